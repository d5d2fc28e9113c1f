package admission

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// asyncProposer resolves each entry from its own goroutine after a random
// delay, sometimes with an entry error, and sometimes fails Propose.
type asyncProposer struct {
	mu       sync.Mutex
	rng      *rand.Rand
	proposed map[string]int // holder -> times proposed
	pending  sync.WaitGroup
}

type asyncEntry struct {
	done chan struct{}
	res  []lease.Result
	err  error
}

func (e *asyncEntry) Done() <-chan struct{}           { return e.done }
func (e *asyncEntry) Result() ([]lease.Result, error) { return e.res, e.err }

func (p *asyncProposer) Now() (time.Duration, bool) { return time.Hour, true }

func (p *asyncProposer) Propose(cmds []lease.Command) (Future, error) {
	p.mu.Lock()
	r := p.rng.IntN(100)
	delay := time.Duration(p.rng.IntN(2000)) * time.Microsecond
	if r < 3 {
		p.mu.Unlock()
		return nil, &lease.Error{Code: lease.CodeNotLeader, LeaderID: "n2"}
	}
	for _, c := range cmds {
		p.proposed[c.Holder]++
	}
	p.mu.Unlock()
	e := &asyncEntry{done: make(chan struct{})}
	if r < 6 {
		e.err = lease.Errorf(lease.CodeUnknown, "leadership lost")
	} else {
		e.res = make([]lease.Result, len(cmds))
		for i, c := range cmds {
			e.res[i] = lease.Result{Code: lease.CodeOK, Holder: c.Holder}
		}
	}
	p.pending.Add(1)
	go func() {
		defer p.pending.Done()
		t := time.NewTimer(delay)
		<-t.C
		close(e.done)
	}()
	return e, nil
}

func (p *asyncProposer) count(holder string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proposed[holder]
}

func TestStress(t *testing.T) {
	p := &asyncProposer{rng: rand.New(rand.NewPCG(1, 2)), proposed: map[string]int{}}
	q, err := New(p, testSettings(func(s *Settings) {
		s.MaxOpsPerEntry = 16
		s.MaxInFlight = 2
		s.MaxQueuedOps = 512
	}))
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, calls = 64, 60
	ops := []lease.Op{lease.OpClaim, lease.OpExtend, lease.OpRevoke, lease.OpPin, lease.OpUnpin}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		stats = map[string]int{}
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for c := range calls {
				n := 1 + rng.IntN(20)
				cmds := make([]lease.Command, n)
				for i := range cmds {
					cmds[i] = cmd(ops[rng.IntN(len(ops))], fmt.Sprintf("%d-%d-%d", g, c, i))
				}
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				stop := func() bool { return false }
				switch rng.IntN(4) {
				case 0: // cancel at a random moment, racing the results
					ctx, cancel = context.WithCancel(ctx)
					d := time.Duration(rng.IntN(3000)) * time.Microsecond
					stop = time.AfterFunc(d, cancel).Stop
				case 1: // short deadline
					ctx, cancel = context.WithTimeout(ctx, time.Duration(1+rng.IntN(40))*time.Millisecond)
				}
				res, err := q.Submit(ctx, cmds)
				stop()
				cancel()
				outcome := check(t, p, cmds, res, err)
				mu.Lock()
				stats[outcome]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	q.Close()
	p.pending.Wait()
	t.Logf("outcomes: %v", stats)
	if st := q.Stats(); st.InFlight != 0 || st.Depth != [numLanes]int{} {
		t.Fatalf("after close: %+v", st)
	}
}

// check verifies one call's answer against what was proposed.
func check(t *testing.T, p *asyncProposer, cmds []lease.Command, res []lease.Result, err error) string {
	t.Helper()
	notProposed := func(why string) {
		for _, c := range cmds {
			if n := p.count(c.Holder); n != 0 {
				t.Errorf("%s: op %s was answered %q but proposed %d times", why, c.Holder, why, n)
			}
		}
	}
	if err != nil {
		if res != nil {
			t.Errorf("both results and error %v", err)
		}
		code := lease.CodeOf(err)
		switch {
		case (code == lease.CodeCanceled || code == lease.CodeUnknown) && errors.Is(err, ErrMayHaveApplied):
			return "gave-up-after-proposal"
		case code == lease.CodeCanceled, code == lease.CodeDeadlineExceeded, code == lease.CodeOverloaded:
			notProposed(code.String())
			return code.String()
		case code == lease.CodeNotLeader, code == lease.CodeUnknown:
			return code.String()
		default:
			t.Errorf("unexpected error %v", err)
			return "?"
		}
	}
	if len(res) != len(cmds) {
		t.Errorf("%d results for %d cmds", len(res), len(cmds))
		return "?"
	}
	for i, r := range res {
		switch r.Code {
		case lease.CodeOK:
			if r.Holder != cmds[i].Holder || p.count(r.Holder) == 0 {
				t.Errorf("slot %d: result for %s, cmd %s, proposed %d", i, r.Holder, cmds[i].Holder, p.count(r.Holder))
			}
		case lease.CodeDeadlineExceeded, lease.CodeOverloaded:
			if n := p.count(cmds[i].Holder); n != 0 {
				t.Errorf("op %s answered %v but proposed", cmds[i].Holder, r.Code)
			}
		case lease.CodeNotLeader, lease.CodeUnknown:
		default:
			t.Errorf("unexpected result %+v", r)
		}
	}
	return "results"
}
