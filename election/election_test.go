package election_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/election"
	"github.com/leasehold/leasehold/internal/clock/clocktest"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/testutil"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/manager"
)

var office = lease.Key{Namespace: "singular-controller", Group: "model-1", Name: "scheduler"}

// startCluster runs a real 3-node cluster (Raft over TCP on loopback, fsync
// on) and returns a client of all its servers.
func startCluster(t *testing.T) *client.Client {
	t.Helper()
	c, err := devcluster.Start(context.Background(), devcluster.Options{Dir: t.TempDir(), Raft: testutil.FastRaft})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal("no leader:", err)
	}
	var addrs []string
	for _, m := range c.Members {
		addrs = append(addrs, m.ClientAddr)
	}
	cl, err := client.New(client.Config{Endpoints: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newElection(t *testing.T, cfg election.Config) *election.Election {
	t.Helper()
	e, err := election.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// campaignAsync campaigns in the background and reports the term and the
// local instant it began.
func campaignAsync(ctx context.Context, e *election.Election) <-chan termAt {
	out := make(chan termAt, 1)
	go func() {
		ld, err := e.Campaign(ctx)
		out <- termAt{ld, time.Now(), err}
	}()
	return out
}

type termAt struct {
	ld  *election.Leadership
	at  time.Time
	err error
}

// endedAt records when ld's context ended.
func endedAt(ld *election.Leadership) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() { <-ld.Done(); out <- time.Now() }()
	return out
}

func TestRunLeadsThenHandsOver(t *testing.T) {
	cl := startCluster(t)
	ctx := ctxT(t)
	cfg := func(id string) election.Config {
		return election.Config{Client: cl, Key: office, ID: id, Duration: 3 * time.Second}
	}

	type cand struct {
		started chan uint64
		stopped chan struct{}
		cause   atomic.Value
		mu      sync.Mutex
		leaders []string
		ret     chan error
	}
	run := func(ctx context.Context, id string) *cand {
		c := &cand{started: make(chan uint64, 1), stopped: make(chan struct{}), ret: make(chan error, 1)}
		go func() {
			c.ret <- election.Run(ctx, cfg(id), election.Callbacks{
				OnStartedLeading: func(lctx context.Context, token uint64) {
					c.started <- token
					<-lctx.Done()
					c.cause.Store(context.Cause(lctx))
				},
				OnStoppedLeading: func() { close(c.stopped) },
				OnNewLeader: func(id string) {
					c.mu.Lock()
					c.leaders = append(c.leaders, id)
					c.mu.Unlock()
				},
			})
		}()
		return c
	}
	sawLeader := func(c *cand, id string) func() bool {
		return func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.leaders) > 0 && c.leaders[len(c.leaders)-1] == id
		}
	}

	actx, stopA := context.WithCancel(ctx)
	a := run(actx, "a")
	var tokA uint64
	select {
	case tokA = <-a.started:
	case <-ctx.Done():
		t.Fatal("a never led")
	}
	if tokA == 0 {
		t.Fatal("no fencing token")
	}
	bctx, stopB := context.WithCancel(ctx)
	b := run(bctx, "b")
	testutil.WaitFor(t, 10*time.Second, "b to observe leader a", sawLeader(b, "a"))
	select {
	case <-b.started:
		t.Fatal("b leads while a does")
	default:
	}

	stopA() // a steps down: its work stops, it resigns, b is granted at once
	if err := <-a.ret; err != nil {
		t.Fatalf("a's Run after its context ended: %v, want nil", err)
	}
	select {
	case <-a.stopped:
	default:
		t.Fatal("Run returned before OnStoppedLeading")
	}
	if c, _ := a.cause.Load().(error); !errors.Is(c, context.Canceled) {
		t.Fatalf("a's leading context ended with %v, want context.Canceled", c)
	}
	var tokB uint64
	select {
	case tokB = <-b.started:
	case <-ctx.Done():
		t.Fatal("b never led after a resigned")
	}
	if tokB <= tokA {
		t.Fatalf("fencing token went from %d to %d", tokA, tokB)
	}
	testutil.WaitFor(t, 10*time.Second, "b to observe itself", sawLeader(b, "b"))
	stopB()
	if err := <-b.ret; err != nil {
		t.Fatalf("b's Run: %v", err)
	}
}

// TestRevokeEndsTermBeforeSafeUntil: the holder's lease is revoked from
// elsewhere (the same holder name, say an operator with the CLI) and a
// waiting candidate is granted it. The term's context must end while its
// SafeUntil is still ahead: a's clock is frozen, so neither a renewal nor
// SafeUntil passing can end it, only the watch.
func TestRevokeEndsTermBeforeSafeUntil(t *testing.T) {
	cl := startCluster(t)
	ctx := ctxT(t)
	// A fake clock never advanced: its timers never fire, so a candidate on it
	// never renews and its SafeUntil never passes; only the watch can end its term.
	clk := clocktest.New(time.Now())
	a := newElection(t, election.Config{Client: cl, Key: office, ID: "a", Duration: 20 * time.Second, Clock: clk})
	b := newElection(t, election.Config{Client: cl, Key: office, ID: "b", Duration: 20 * time.Second})
	ldA, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bLeads := campaignAsync(ctx, b)
	if _, err := cl.Revoke(ctx, office, "a"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ldA.Done():
	case <-ctx.Done():
		t.Fatal("a's term did not end after its lease was revoked")
	}
	if !errors.Is(ldA.Err(), election.ErrLeadershipLost) {
		t.Fatalf("cause %v, want ErrLeadershipLost", ldA.Err())
	}
	if !clk.Now().Before(ldA.SafeUntil()) {
		t.Fatal("the frozen clock reached SafeUntil")
	}
	t.Log("a's term ended:", ldA.Err())
	r := <-bLeads
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.ld.Token() <= ldA.Token() {
		t.Fatalf("b's token %d not above a's %d", r.ld.Token(), ldA.Token())
	}
	if err := ldA.Resign(ctx); err != nil {
		t.Fatalf("resigning a lost term: %v", err)
	}
	if err := r.ld.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// failingTransport is a manager transport whose writes can be cut off, as
// for a leader partitioned from the cluster: its renewals stop landing.
type failingTransport struct {
	manager.ClientTransport
	cut       atomic.Bool
	notLeader atomic.Int32 // answer this many more calls NotLeader
}

func (f *failingTransport) Bulk(ctx context.Context, cmds []lease.Command) ([]client.BulkResult, error) {
	if f.cut.Load() {
		return nil, lease.Errorf(lease.CodeUnavailable, "cut off by the test")
	}
	if f.notLeader.Add(-1) >= 0 {
		return nil, &lease.Error{Code: lease.CodeNotLeader, Message: "leadership changing (test)"}
	}
	return f.ClientTransport.Bulk(ctx, cmds)
}

// TestExpiryEndsTermBeforeSafeUntil: the leader's renewals stop landing,
// its lease expires and the next candidate is granted it. The old term's
// context must end before its SafeUntil, and so before the new term begins.
func TestExpiryEndsTermBeforeSafeUntil(t *testing.T) {
	cl := startCluster(t)
	ctx := ctxT(t)
	tr := &failingTransport{ClientTransport: manager.FromClient(cl)}
	mgrA := manager.New(manager.Config{Transport: tr})
	defer mgrA.Close()
	const d = 3 * time.Second
	a := newElection(t, election.Config{Client: cl, Manager: mgrA, Key: office, ID: "a", Duration: d, StopMargin: 800 * time.Millisecond})
	b := newElection(t, election.Config{Client: cl, Key: office, ID: "b", Duration: d})
	ldA, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ended := endedAt(ldA)
	tr.cut.Store(true)
	bLeads := campaignAsync(ctx, b)

	var at time.Time
	select {
	case at = <-ended:
	case <-ctx.Done():
		t.Fatal("a's term did not end when its renewals stopped")
	}
	safe := ldA.SafeUntil()
	if !errors.Is(ldA.Err(), election.ErrLeadershipLost) {
		t.Fatalf("cause %v, want ErrLeadershipLost", ldA.Err())
	}
	if !at.Before(safe) {
		t.Fatalf("term ended at %v, not before SafeUntil %v", at, safe)
	}
	r := <-bLeads
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !at.Before(r.at) {
		t.Fatalf("b led at %v, before a's term ended at %v", r.at, at)
	}
	if r.ld.Token() <= ldA.Token() {
		t.Fatalf("b's token %d not above a's %d", r.ld.Token(), ldA.Token())
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	ldA.Resign(rctx) // its transport is cut: the revoke fails, harmlessly
	cancel()
	if err := r.ld.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestObserveFollowsLeader: the observer sees no leader, then a, then b
// after a resigns.
func TestObserveFollowsLeader(t *testing.T) {
	cl := startCluster(t)
	ctx := ctxT(t)
	a := newElection(t, election.Config{Client: cl, Key: office, ID: "a", Duration: 5 * time.Second})
	b := newElection(t, election.Config{Client: cl, Key: office, ID: "b", Duration: 5 * time.Second})
	octx, stop := context.WithCancel(ctx)
	obs := a.Observe(octx)
	next := func(want string) {
		t.Helper()
		for {
			select {
			case l, ok := <-obs:
				if !ok {
					t.Fatalf("observer closed waiting for %q", want)
				}
				if l.ID == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("observer never showed %q", want)
			}
		}
	}
	if first := <-obs; first.ID != "" {
		t.Fatalf("first observation %+v, want no leader", first)
	}
	ldA, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next("a")
	bLeads := campaignAsync(ctx, b)
	if err := ldA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	next("b")
	r := <-bLeads
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.ld.Resign(ctx)
	stop()
	for range obs {
	} // closed once ctx is done
}

func TestConfigRequired(t *testing.T) {
	for _, cfg := range []election.Config{
		{Key: office, ID: "a"},
		{Client: &client.Client{}, ID: "a"},
		{Client: &client.Client{}, Key: office},
		{Client: &client.Client{}, Key: office, ID: "a", Duration: time.Second, StopMargin: time.Second},
	} {
		if _, err := election.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestCloseEndsTheTerm: closing the election stops its renewals, so a term
// still held ends at once, and Campaign afterwards is refused.
func TestCloseEndsTheTerm(t *testing.T) {
	cl := startCluster(t)
	ctx := ctxT(t)
	e, err := election.New(election.Config{Client: cl, Key: office, ID: "a", Duration: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ld, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	select {
	case <-ld.Done():
	default:
		t.Fatal("term still running after Close")
	}
	if !errors.Is(ld.Err(), election.ErrLeadershipLost) {
		t.Fatalf("cause %v, want ErrLeadershipLost", ld.Err())
	}
	if _, err := e.Campaign(ctx); !errors.Is(err, election.ErrClosed) {
		t.Fatalf("Campaign after Close: %v, want ErrClosed", err)
	}
}

// TestResignRetriesThroughALeaderChange: the revoke meets more NotLeader
// answers than the manager's own attempts; Resign keeps trying within its
// context and the office is released.
func TestResignRetriesThroughALeaderChange(t *testing.T) {
	cl := startCluster(t)
	ctx := ctxT(t)
	tr := &failingTransport{ClientTransport: manager.FromClient(cl)}
	mgr := manager.New(manager.Config{Transport: tr})
	defer mgr.Close()
	e := newElection(t, election.Config{Client: cl, Manager: mgr, Key: office, ID: "a", Duration: 20 * time.Second, Retry: 10 * time.Millisecond})
	ld, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr.notLeader.Store(8)
	if err := ld.Resign(ctx); err != nil {
		t.Fatalf("Resign: %v", err)
	}
	if cur, err := e.Leader(ctx); err != nil || cur.ID != "" {
		t.Fatalf("after Resign the leader is %+v (%v), want none", cur, err)
	}
}
