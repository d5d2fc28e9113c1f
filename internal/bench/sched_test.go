package bench

import (
	"context"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// gateSession grants every claim at once, except that calls of agents whose
// holder hold(holder) says so wait for gate. It counts the calls and their
// concurrency and signals when counts are reached; no real lease logic (the
// tests here are about the scheduler, not about correctness).
type gateSession struct {
	gate <-chan struct{}
	hold func(holder string) bool

	mu        sync.Mutex
	inFlight  int
	maxFlight int
	calls     int
	byHolder  map[string]int
	order     []string              // holders in the order their calls were answered
	waiting   int                   // calls blocked at the gate
	notify    map[int]chan struct{} // closed when calls reaches the key
	atWaiting map[int]chan struct{} // closed when waiting reaches the key
}

func newGateSession(gate <-chan struct{}, hold func(string) bool) *gateSession {
	return &gateSession{gate: gate, hold: hold, byHolder: map[string]int{},
		notify: map[int]chan struct{}{}, atWaiting: map[int]chan struct{}{}}
}

// callsReach returns a channel closed once n calls have been answered.
func (g *gateSession) callsReach(n int) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{})
	if g.calls >= n {
		close(ch)
	} else {
		g.notify[n] = ch
	}
	return ch
}

// waitingReach returns a channel closed once n calls wait at the gate.
func (g *gateSession) waitingReach(n int) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{})
	if g.waiting >= n {
		close(ch)
	} else {
		g.atWaiting[n] = ch
	}
	return ch
}

func (g *gateSession) Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	g.mu.Lock()
	g.inFlight++
	g.maxFlight = max(g.maxFlight, g.inFlight)
	hold := g.hold(holder)
	if hold {
		g.waiting++
		if ch, ok := g.atWaiting[g.waiting]; ok {
			close(ch)
			delete(g.atWaiting, g.waiting)
		}
	}
	g.mu.Unlock()
	if hold {
		select {
		case <-g.gate:
		case <-ctx.Done():
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if hold {
		g.waiting--
	}
	g.inFlight--
	g.calls++
	g.byHolder[holder]++
	g.order = append(g.order, holder)
	if ch, ok := g.notify[g.calls]; ok {
		close(ch)
		delete(g.notify, g.calls)
	}
	return Grant{Token: 1}, nil
}

func (g *gateSession) Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	return g.Claim(ctx, key, holder, d)
}
func (g *gateSession) Revoke(ctx context.Context, key, holder string) error {
	_, err := g.Claim(ctx, key, holder, 0)
	return err
}
func (g *gateSession) Close() error { return nil }

// await waits for ch; the bound only keeps a broken scheduler from hanging
// the package until go test's own timeout (it is not a performance check).
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("no %s after a minute", what)
	}
}

// schedHarness is a harness over sess whose agents claim once, all at the
// start, and then not again for an hour (so a test sees exactly the calls
// it provokes).
func schedHarness(t *testing.T, leases int, sess Session) (*harness, context.CancelFunc) {
	t.Helper()
	cfg, err := Options{Targets: []string{"mem"}, Leases: leases, Claimants: 1, LeaseDuration: 2 * time.Hour,
		RenewEvery: time.Hour, Duration: time.Hour, TimeScale: 1, RevokeChance: -1}.config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Ramp = 0
	opCtx, cancel := context.WithCancel(context.Background())
	return &harness{cfg: cfg, rec: newRecorder(time.Now()), sessions: []Session{sess}, opCtx: opCtx}, cancel
}

// TestSchedulerBoundsCallsInFlight: 2,000 agents due at once with calls that
// block; the generator has at most maxInFlight calls (and about as many
// goroutines) alive, not one goroutine per agent, and every agent still gets
// its call once the calls return.
func TestSchedulerBoundsCallsInFlight(t *testing.T) {
	defer goleak.VerifyNone(t, etcdLeakIgnores()...)
	const agents, bound = 2000, 16
	gate := make(chan struct{})
	sess := newGateSession(gate, func(string) bool { return true })
	h, cancel := schedHarness(t, agents, sess)
	defer cancel()
	s := newScheduler(h, 0, 0, bound)
	stop, herd := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	before := runtime.NumGoroutine()
	go func() { defer close(done); s.run(stop, herd) }()

	await(t, sess.waitingReach(bound), "calls at the bound")
	// The bound is reached and every call blocks: the dispatcher waits on
	// the calls. Goroutines now: the dispatcher, the calls in flight, and
	// none per idle agent (the generator this replaced had 2,000).
	if n := runtime.NumGoroutine() - before; n > bound+8 {
		t.Errorf("%d goroutines for %d agents with %d calls in flight", n, agents, bound)
	}
	close(gate)
	await(t, sess.callsReach(agents), "call per agent")
	close(stop)
	await(t, done, "end of the scheduler")

	if s.maxSeen != bound || sess.maxFlight != bound {
		t.Errorf("most calls in flight: scheduler %d, session %d; want %d", s.maxSeen, sess.maxFlight, bound)
	}
	if len(sess.byHolder) != agents {
		t.Errorf("%d agents called, want %d", len(sess.byHolder), agents)
	}
	if s.lag.n != uint64(sess.calls) {
		t.Errorf("lag measured for %d calls of %d", s.lag.n, sess.calls)
	}
	if c := h.rec.check.finish(); c.Checked != uint64(sess.calls) {
		t.Errorf("checked %d calls of %d", c.Checked, sess.calls)
	}
}

// TestSchedulerHerdRestartsEveryAgent: when the herd fires every agent claims
// again at once, exactly once, whether it was waiting (it holds its lease
// for another hour) or had its call in flight (it restarts when the call
// comes back).
func TestSchedulerHerdRestartsEveryAgent(t *testing.T) {
	defer goleak.VerifyNone(t, etcdLeakIgnores()...)
	const agents = 200
	gate := make(chan struct{})
	h0 := &harness{cfg: runConfig{Claimants: 1}, base: agents}
	// Odd agents' first calls wait for the gate: in flight when the herd fires.
	held := map[string]bool{}
	for id := int32(1); id < agents; id += 2 {
		held[h0.holderName(id)] = true
	}
	var mu sync.Mutex
	sess := newGateSession(gate, func(holder string) bool {
		mu.Lock()
		defer mu.Unlock()
		hold := held[holder]
		delete(held, holder) // only the first call waits
		return hold
	})
	h, cancel := schedHarness(t, agents, sess)
	defer cancel()
	s := newScheduler(h, 0, 0, agents)
	stop, herd := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); s.run(stop, herd) }()

	await(t, sess.waitingReach(agents/2), "odd agents' calls blocked")
	await(t, sess.callsReach(agents/2), "even agents' calls answered")
	close(herd)
	close(gate)
	await(t, sess.callsReach(2*agents), "second call per agent")
	close(stop)
	await(t, done, "end of the scheduler")

	for id := range int32(agents) {
		if n := sess.byHolder[h.holderName(id)]; n != 2 {
			t.Errorf("agent %d made %d calls, want 2 (a claim, then one after the herd)", id, n)
		}
	}
}

// TestSchedulerDrivesAgentsInScheduleOrder: agents whose calls are due at
// shuffled times (all already past, so nothing here depends on the clock)
// are called earliest-due first, and with a bound of one call in flight the
// session never sees two at once. It fails if the dispatcher starts agents
// in any other order or lets more calls out than the bound.
func TestSchedulerDrivesAgentsInScheduleOrder(t *testing.T) {
	defer goleak.VerifyNone(t, etcdLeakIgnores()...)
	const agents = 500
	sess := newGateSession(nil, func(string) bool { return false })
	h, cancel := schedHarness(t, agents, sess)
	defer cancel()
	s := newScheduler(h, 0, 0, 1)
	// Agent i is due perm[i]+1 ms before the run started.
	perm := rand.New(rand.NewPCG(1, 2)).Perm(agents)
	for i := range s.q {
		s.q[i] = heapEntry{when: -time.Duration(perm[i]+1) * time.Millisecond, idx: int32(i)}
	}
	s.q.init()
	want := make([]string, agents)
	for i, p := range perm {
		want[agents-1-p] = h.holderName(int32(i)) // most overdue first
	}
	stop, herd := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); s.run(stop, herd) }()
	await(t, sess.callsReach(agents), "call per agent")
	close(stop)
	await(t, done, "end of the scheduler")

	if sess.maxFlight > 1 || s.maxSeen > 1 {
		t.Errorf("most calls in flight: session %d, scheduler %d; bound 1", sess.maxFlight, s.maxSeen)
	}
	if !slices.Equal(sess.order, want) {
		for i := range want {
			if i >= len(sess.order) || sess.order[i] != want[i] {
				t.Fatalf("call %d went to %q, want %q (the next due); %d calls", i, sess.order[min(i, len(sess.order)-1)], want[i], len(sess.order))
			}
		}
		t.Fatalf("%d calls, want %d", len(sess.order), agents)
	}
}

// TestAgentHeapOrder: the hand-written heap pops in due order under mixed
// pushes and pops.
func TestAgentHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var q agentHeap
	var ref []time.Duration
	for i := range 5000 {
		if r.IntN(3) > 0 || len(q) == 0 {
			w := time.Duration(r.IntN(1000))
			q.push(heapEntry{when: w, idx: int32(i)})
			ref = append(ref, w)
			continue
		}
		slices.Sort(ref)
		if e := q.pop(); e.when != ref[0] {
			t.Fatalf("pop %v, want %v", e.when, ref[0])
		}
		ref = ref[1:]
	}
	slices.Sort(ref)
	for _, w := range ref {
		if e := q.pop(); e.when != w {
			t.Fatalf("drain: pop %v, want %v", e.when, w)
		}
	}
}
