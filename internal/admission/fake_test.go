package admission

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/clock/clocktest"
	"github.com/leasehold/leasehold/lease"
)

func poke(ch chan struct{}) {
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fakeProposer records entries; tests resolve them by hand unless auto is set.
type fakeProposer struct {
	mu          sync.Mutex
	rep         time.Duration
	notLeader   bool
	err         error // returned by the next Propose calls
	auto        bool  // resolve at once
	plain       bool  // futures without Notify: the queue waits with a goroutine
	entries     chan *fakeEntry
	outstanding int
	maxOut      int
	proposed    map[string]bool // by holder
}

type fakeEntry struct {
	p    *fakeProposer
	cmds []lease.Command
	done chan struct{}
	once sync.Once
	res  []lease.Result
	err  error

	mu       sync.Mutex // guards resolved and notify
	resolved bool
	notify   interface{ Resolved() }
}

// Notify makes fakeEntry a notifier, as the raft node's proposals are.
func (e *fakeEntry) Notify(fn interface{ Resolved() }) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.resolved {
		return false
	}
	e.notify = fn
	return true
}

// plainEntry hides Notify.
type plainEntry struct{ e *fakeEntry }

func (p plainEntry) Done() <-chan struct{}           { return p.e.done }
func (p plainEntry) Result() ([]lease.Result, error) { return p.e.Result() }

func newFakeProposer() *fakeProposer {
	return &fakeProposer{rep: 100 * time.Second, entries: make(chan *fakeEntry, 1<<16), proposed: map[string]bool{}}
}

func (p *fakeProposer) Now() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rep, !p.notLeader
}

func (p *fakeProposer) Propose(cmds []lease.Command) (Future, error) {
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, err
	}
	e := &fakeEntry{p: p, cmds: cmds, done: make(chan struct{})}
	for _, c := range cmds {
		p.proposed[c.Holder] = true
	}
	p.outstanding++
	p.maxOut = max(p.maxOut, p.outstanding)
	auto, plain := p.auto, p.plain
	p.mu.Unlock()
	if auto {
		e.resolve(nil)
	} else {
		p.entries <- e
	}
	if plain {
		return plainEntry{e}, nil
	}
	return e, nil
}

func (p *fakeProposer) wasProposed(holder string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proposed[holder]
}

// resolve applies the entry: every result echoes its command's holder so
// tests can check each result landed in its caller's slot.
func (e *fakeEntry) resolve(err error) {
	e.once.Do(func() {
		if err != nil {
			e.err = err
		} else {
			e.res = make([]lease.Result, len(e.cmds))
			for i, c := range e.cmds {
				e.res[i] = lease.Result{Code: lease.CodeOK, Outcome: lease.OutcomeExtended, Holder: c.Holder, Token: uint64(i)}
			}
		}
		e.p.mu.Lock()
		e.p.outstanding--
		e.p.mu.Unlock()
		e.mu.Lock()
		e.resolved = true
		fn := e.notify
		e.mu.Unlock()
		close(e.done)
		if fn != nil {
			fn.Resolved()
		}
	})
}

func (e *fakeEntry) Done() <-chan struct{}           { return e.done }
func (e *fakeEntry) Result() ([]lease.Result, error) { return e.res, e.err }

func (e *fakeEntry) holders() []string {
	out := make([]string, len(e.cmds))
	for i, c := range e.cmds {
		out[i] = c.Holder
	}
	return out
}

// harness is a Queue with a fake proposer and clock, and a way to wait for
// conditions without sleeping: every depth change and timer registration
// pokes notify.
type harness struct {
	t      *testing.T
	q      *Queue
	p      *fakeProposer
	clock  *clocktest.Fake
	notify chan struct{}
}

func newHarness(t *testing.T, mut func(*Settings)) *harness {
	t.Helper()
	h := &harness{t: t, p: newFakeProposer(), notify: make(chan struct{}, 1)}
	h.clock = clocktest.New(time.Now())
	h.clock.Notify(h.notify)
	q, err := New(h.p, testSettings(mut), WithClock(h.clock),
		WithHooks(Hooks{Depth: func(Lane, int) { poke(h.notify) },
			Committed: func(int, time.Duration, error) { poke(h.notify) }}))
	if err != nil {
		t.Fatal(err)
	}
	h.q = q
	t.Cleanup(q.Close)
	return h
}

const testTimeout = 10 * time.Second

// waitFor blocks until cond holds, re-checking on every poke.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	guard := time.NewTimer(testTimeout)
	defer guard.Stop()
	for !cond() {
		select {
		case <-h.notify:
		case <-guard.C:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) depth() int {
	st := h.q.Stats()
	return st.Depth[LaneRenewal] + st.Depth[LaneClaim]
}

func (h *harness) nextEntry() *fakeEntry {
	h.t.Helper()
	select {
	case e := <-h.p.entries:
		return e
	case <-time.After(testTimeout):
		h.t.Fatal("timed out waiting for an entry")
		return nil
	}
}

type answer struct {
	res []lease.Result
	err error
}

// submit runs Submit in a goroutine and returns where its answer will arrive.
func (h *harness) submit(ctx context.Context, cmds ...lease.Command) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		res, err := h.q.Submit(ctx, cmds)
		ch <- answer{res, err}
	}()
	return ch
}

func (h *harness) recv(ch <-chan answer) answer {
	h.t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(testTimeout):
		h.t.Fatal("timed out waiting for an answer")
		return answer{}
	}
}
