package e2e

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
	"github.com/leasehold/leasehold/lease"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions()...)
}

var fastRaft = testutil.FastRaft

// env is a running cluster with a probe on every member's log store.
type env struct {
	*devcluster.Cluster
	stores map[string]*probeStore // by member ID
}

// start runs a 3-node cluster on free ports and waits for a leader. adjust,
// when set, changes the options after the defaults are filled in.
func start(t testing.TB, adjust func(*devcluster.Options)) *env {
	t.Helper()
	e := &env{stores: map[string]*probeStore{}}
	var mu sync.Mutex
	opts := devcluster.Options{Dir: t.TempDir(), Raft: func(c *replica.Config) {
		fastRaft(c)
		mu.Lock()
		ps := e.stores[c.ID]
		if ps == nil {
			ps = &probeStore{}
			e.stores[c.ID] = ps
		}
		mu.Unlock()
		c.WrapLogStore = ps.wrap
	}}
	if adjust != nil {
		adjust(&opts)
	}
	c, err := devcluster.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Cluster = c
	t.Cleanup(func() { c.Close() })
	e.leader(t)
	return e
}

// leader waits (bounded) for a ready leader.
func (e *env) leader(t testing.TB) *devcluster.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := e.WaitLeader(ctx)
	if err != nil {
		t.Fatal("no leader:", err)
	}
	return l
}

func (e *env) endpoints() []string {
	var eps []string
	for _, m := range e.Members {
		eps = append(eps, m.ClientAddr)
	}
	return eps
}

func (e *env) follower(t testing.TB) *devcluster.Member {
	t.Helper()
	l := e.leader(t)
	for _, m := range e.Members {
		if m != l && m.Running() {
			return m
		}
	}
	t.Fatal("no running follower")
	return nil
}

func newClient(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func key(group, name string) lease.Key {
	return lease.Key{Namespace: "e2e", Group: group, Name: name}
}

var waitFor = testutil.WaitFor

// codeOf is the taxonomy code of a call's error; every error a client call
// returns must be a *lease.Error, so anything else fails the test.
func codeOf(t testing.TB, err error) lease.Code {
	t.Helper()
	if err == nil {
		return lease.CodeOK
	}
	le, ok := err.(*lease.Error)
	if !ok {
		t.Errorf("error %T %v is not a *lease.Error", err, err)
		return lease.CodeUnknown
	}
	return le.Code
}

// probeStore wraps a member's Raft log store: it counts the entries the
// member stores by kind (so a benchmark can tell op entries from clock
// ticks without trusting the code under test) and can stall writes, which
// holds the leader's log still while requests queue behind it.
type probeStore struct {
	raft.LogStore

	writes  atomic.Int64 // StoreLogs calls (one log-store transaction each)
	writeNs atomic.Int64 // time spent in the real store's StoreLogs
	// timed, when set, records when each entry's write started and ended
	// (Unix ns), for the one-client latency breakdown.
	timed    atomic.Bool
	timeMu   sync.Mutex
	times    map[uint64][2]int64
	entries  atomic.Int64 // LogCommand entries stored
	ticks    atomic.Int64 // empty batch entries (clock ticks)
	opEntry  atomic.Int64 // batch entries holding commands
	ops      atomic.Int64 // commands in them
	other    atomic.Int64 // member/settings entries
	stalled  atomic.Bool
	stallMu  sync.Mutex
	released chan struct{}
	// writeDelay (ns) is added to every log write: a slower disk, so that
	// the log's capacity, not how fast this machine happens to be, bounds
	// throughput in tests that must overload it.
	writeDelay atomic.Int64
}

func (p *probeStore) wrap(s raft.LogStore) raft.LogStore {
	p.LogStore = s
	return p
}

// IsMonotonic forwards the real store's promise (if any), so Raft treats
// the wrapped store exactly as the real one.
func (p *probeStore) IsMonotonic() bool {
	m, ok := p.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (p *probeStore) StoreLog(l *raft.Log) error { return p.StoreLogs([]*raft.Log{l}) }

func (p *probeStore) StoreLogs(logs []*raft.Log) error {
	if d := p.writeDelay.Load(); d > 0 {
		time.Sleep(time.Duration(d)) // emulated disk latency, not a wait for a condition
	}
	if p.stalled.Load() {
		p.stallMu.Lock()
		ch := p.released
		p.stallMu.Unlock()
		if ch != nil {
			<-ch
		}
	}
	p.writes.Add(1)
	for _, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		p.entries.Add(1)
		e, err := logentry.Decode(l.Data)
		switch {
		case err != nil:
		case e.Kind != logentry.KindBatch:
			p.other.Add(1)
		case len(e.Commands) == 0:
			p.ticks.Add(1)
		default:
			p.opEntry.Add(1)
			p.ops.Add(int64(len(e.Commands)))
		}
	}
	t0 := time.Now()
	err := p.LogStore.StoreLogs(logs)
	t1 := time.Now()
	p.writeNs.Add(int64(t1.Sub(t0)))
	if p.timed.Load() {
		p.timeMu.Lock()
		if p.times == nil {
			p.times = map[uint64][2]int64{}
		}
		for _, l := range logs {
			p.times[l.Index] = [2]int64{t0.UnixNano(), t1.UnixNano()}
		}
		p.timeMu.Unlock()
	}
	return err
}

// stall makes later writes block until the returned release is called.
func (p *probeStore) stall() (release func()) {
	ch := make(chan struct{})
	p.stallMu.Lock()
	p.released = ch
	p.stallMu.Unlock()
	p.stalled.Store(true)
	var once sync.Once
	return func() {
		once.Do(func() {
			p.stalled.Store(false)
			close(ch)
		})
	}
}

type storeCounts struct{ entries, ticks, opEntries, ops, other int64 }

func (p *probeStore) counts() storeCounts {
	return storeCounts{p.entries.Load(), p.ticks.Load(), p.opEntry.Load(), p.ops.Load(), p.other.Load()}
}

func (a storeCounts) sub(b storeCounts) storeCounts {
	return storeCounts{a.entries - b.entries, a.ticks - b.ticks, a.opEntries - b.opEntries, a.ops - b.ops, a.other - b.other}
}
