package faults

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
)

// Env is a 3-node in-process cluster on loopback with every fault hook in
// place: each server's Raft transport is the real TCP transport wrapped by
// Transport, its log store is wrapped by LogStore and its leader clock is a
// Clock.
type Env struct {
	C       *devcluster.Cluster
	Net     *Net
	Clients *ClientNet
	// Waiters is the waiters' dialer: the workload closes their
	// connections every so often to break their streams.
	Waiters *ClientNet
	disks   map[string]*Disk
	clocks  map[string]*Clock
	adjust  func(*replica.Config)

	mu     sync.Mutex
	counts map[string]int // what the fault did, for the outcome's note
}

// count adds n to the named counter of what the fault did.
func (e *Env) count(name string, n int) {
	e.mu.Lock()
	e.counts[name] += n
	e.mu.Unlock()
}

// counted describes the counters ("" if none).
func (e *Env) counted() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(e.counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, e.counts[k]))
	}
	return strings.Join(parts, " ")
}

// StartEnv starts the cluster in dir and waits for a leader. adjust, if
// not nil, changes every server's Raft configuration after testutil.FastRaft.
func StartEnv(ctx context.Context, dir string, adjust func(*replica.Config)) (*Env, error) {
	e := &Env{Net: NewNet(), Clients: NewClientNet(), Waiters: NewClientNet(), disks: map[string]*Disk{}, clocks: map[string]*Clock{},
		adjust: adjust, counts: map[string]int{}}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprint("node", i)
		e.disks[id], e.clocks[id] = &Disk{}, NewClock()
	}
	c, err := devcluster.Start(ctx, devcluster.Options{Dir: dir, Raft: e.hook})
	if err != nil {
		return nil, err
	}
	e.C = c
	if _, err := e.WaitLeader(ctx, 20*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) hook(cfg *replica.Config) {
	testutil.FastRaft(cfg) // faults play out in seconds
	var advertise net.Addr
	if _, port, _ := net.SplitHostPort(cfg.RaftAddr); port != "0" {
		advertise, _ = net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	}
	// On error the node builds its own transport, which fails the same way
	// and reports it.
	if inner, err := raft.NewTCPTransport(cfg.RaftAddr, advertise, 4, 10*time.Second, io.Discard); err == nil {
		cfg.Transport = NewTransport(inner, e.Net, cfg.ID)
	}
	disk := e.disks[cfg.ID]
	cfg.WrapLogStore = func(s raft.LogStore) raft.LogStore { return &LogStore{LogStore: s, disk: disk} }
	cfg.Clock = e.clocks[cfg.ID]
	if e.adjust != nil {
		e.adjust(cfg)
	}
}

// Disk returns server id's disk faults.
func (e *Env) Disk(id string) *Disk { return e.disks[id] }

// Clock returns server id's clock.
func (e *Env) Clock(id string) *Clock { return e.clocks[id] }

// Close stops every server.
func (e *Env) Close() error {
	for _, d := range e.disks {
		d.Release()
	}
	e.Net.Heal()
	e.Clients.Heal()
	return e.C.Close()
}

// WaitLeader waits up to d for a ready leader.
func (e *Env) WaitLeader(ctx context.Context, d time.Duration) (*devcluster.Member, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return e.C.WaitLeader(ctx)
}

// IDs returns the members' IDs except skip.
func (e *Env) IDs(skip string) []string {
	var out []string
	for _, m := range e.C.Members {
		if m.ID != skip {
			out = append(out, m.ID)
		}
	}
	return out
}

// NewClient returns a client of every server, starting at server i%3.
func (e *Env) NewClient(i int) (*client.Client, error) { return e.newClient(i, e.Clients) }

func (e *Env) newClient(i int, dialer *ClientNet) (*client.Client, error) {
	var eps []string
	n := len(e.C.Members)
	for j := 0; j < n; j++ {
		eps = append(eps, e.C.Members[(i+j)%n].ClientAddr)
	}
	return client.New(client.Config{Endpoints: eps, ConnectTimeout: 500 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dialer.Dial)}})
}

// clients are the workload's ways into the cluster; close releases the
// per-server readers.
func (e *Env) clients() (cl Clients, close func(), err error) {
	cl = Clients{New: e.NewClient, Break: e.Waiters.Reset,
		Waiter: func(i int) (*client.Client, error) { return e.newClient(i, e.Waiters) }}
	for _, m := range e.C.Members {
		// Not through a ClientNet: partitions of clients do not stop the sampling.
		c, err := client.New(client.Config{Endpoints: []string{m.ClientAddr}, ConnectTimeout: 500 * time.Millisecond, MaxAttempts: 1})
		if err != nil {
			closeReaders(cl.Servers)
			return Clients{}, nil, err
		}
		cl.Servers = append(cl.Servers, replicaReader{id: m.ID, c: c})
	}
	return cl, func() { closeReaders(cl.Servers) }, nil
}

func closeReaders(rs []replicaReader) {
	for _, r := range rs {
		r.c.Close()
	}
}

// Replicas collects the running servers' final states as snapshots. Ticks
// keep advancing the log, so it retries a bounded number of times to catch
// every replica at the same applied index, where the checker compares them.
func (e *Env) Replicas() []linearize.Replica {
	var reps []linearize.Replica
	for try := 0; try < 100; try++ {
		reps = reps[:0]
		same := true
		for _, m := range e.C.Members {
			r := m.Raft()
			if r == nil {
				continue
			}
			var snap []byte
			idx, _, _ := r.ReadStale(func(m *fsm.Machine, _ time.Duration) { snap = m.AppendSnapshot(nil) })
			reps = append(reps, linearize.Replica{ID: m.ID, Index: idx, Snapshot: snap})
			same = same && idx == reps[0].Index
		}
		if same && len(reps) > 1 {
			break
		}
	}
	return reps
}

// ClientNet lets the suite cut clients off from chosen servers: every
// client connection is dialed through it, and cutting an address closes
// its open connections and refuses new ones.
type ClientNet struct {
	mu      sync.Mutex
	blocked map[string]bool
	conns   map[string][]net.Conn
}

// NewClientNet returns a client network with nothing cut.
func NewClientNet() *ClientNet {
	return &ClientNet{blocked: map[string]bool{}, conns: map[string][]net.Conn{}}
}

// Dial is a grpc context dialer.
func (n *ClientNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	cut := n.blocked[addr]
	n.mu.Unlock()
	if cut {
		return nil, fmt.Errorf("faults: client link to %s cut", addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocked[addr] {
		c.Close()
		return nil, fmt.Errorf("faults: client link to %s cut", addr)
	}
	live := n.conns[addr][:0]
	for _, old := range n.conns[addr] {
		if old != nil {
			live = append(live, old)
		}
	}
	n.conns[addr] = append(live, c)
	return c, nil
}

// Cut closes every client connection to addr and refuses new ones.
func (n *ClientNet) Cut(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[addr] = true
	for _, c := range n.conns[addr] {
		c.Close()
	}
	n.conns[addr] = nil
}

// Reset closes every open connection but lets new ones be made: clients
// see their calls and streams break and retry at once.
func (n *ClientNet) Reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for addr, cs := range n.conns {
		for _, c := range cs {
			c.Close()
		}
		n.conns[addr] = nil
	}
}

// Heal lets clients reach every server again.
func (n *ClientNet) Heal() {
	n.mu.Lock()
	clear(n.blocked)
	n.mu.Unlock()
}
