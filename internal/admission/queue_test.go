package admission

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

func codeOf(err error) lease.Code { return lease.CodeOf(err) }

func TestSingleSubmitterDispatchedAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	ch := h.submit(context.Background(), cmd(lease.OpClaim, "a"))
	e := h.nextEntry() // no clock advance, no other caller: proposed at once
	if len(e.cmds) != 1 || e.cmds[0].Holder != "h-a" {
		t.Fatalf("entry %v", e.holders())
	}
	e.resolve(nil)
	a := h.recv(ch)
	if a.err != nil || len(a.res) != 1 || a.res[0].Holder != "h-a" {
		t.Fatalf("answer %+v", a)
	}
}

func TestConcurrentSubmittersCoalesce(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
	first := h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	const n = 50
	chans := make([]<-chan answer, n)
	for i := range n {
		op := lease.OpClaim
		if i%3 == 0 {
			op = lease.OpExtend
		}
		chans[i] = h.submit(context.Background(), cmd(op, fmt.Sprint("c", i)))
	}
	h.waitFor("all queued", func() bool { return h.depth() == n })
	if st := h.q.Stats(); st.InFlight != 1 {
		t.Fatalf("in flight %d", st.InFlight)
	}
	e1.resolve(nil)
	h.recv(first)
	e2 := h.nextEntry()
	if len(e2.cmds) != n {
		t.Fatalf("second entry has %d ops, want all %d coalesced", len(e2.cmds), n)
	}
	e2.resolve(nil)
	for i, ch := range chans {
		a := h.recv(ch)
		if a.err != nil || len(a.res) != 1 || a.res[0].Holder != fmt.Sprint("h-c", i) {
			t.Fatalf("caller %d got %+v", i, a)
		}
	}
}

func TestCancelWhileQueuedWithdraws(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	ctx, cancel := context.WithCancel(context.Background())
	ch := h.submit(ctx, cmd(lease.OpClaim, "gone"))
	h.waitFor("queued", func() bool { return h.depth() == 1 })
	cancel()
	a := h.recv(ch) // returns before any entry resolves
	if codeOf(a.err) != lease.CodeCanceled || errors.Is(a.err, ErrMayHaveApplied) {
		t.Fatalf("got %v, want canceled before proposal", a.err)
	}
	if h.depth() != 0 {
		t.Fatal("canceled op still queued")
	}
	e1.resolve(nil)
	h.submit(context.Background(), cmd(lease.OpClaim, "later"))
	e2 := h.nextEntry()
	if got := e2.holders(); len(got) != 1 || got[0] != "h-later" || h.p.wasProposed("h-gone") {
		t.Fatalf("entry %v; canceled op proposed: %v", got, h.p.wasProposed("h-gone"))
	}
	e2.resolve(nil)
}

func TestContextDeadlineWhileQueuedIsDeadlineExceeded(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ch := h.submit(ctx, cmd(lease.OpClaim, "x"))
	h.waitFor("timer armed", func() bool { return h.depth() == 1 && h.clock.PendingWithin(3*time.Second) == 1 })
	h.clock.Advance(4 * time.Second) // past the claim default, Raft still stuck
	a := h.recv(ch)
	if codeOf(a.err) != lease.CodeDeadlineExceeded || errors.Is(a.err, ErrMayHaveApplied) {
		t.Fatalf("got %v, want deadline exceeded, not applied", a.err)
	}
	e1.resolve(nil)
	if h.p.wasProposed("h-x") {
		t.Fatal("expired op proposed")
	}
}

func TestCancelAfterProposalReturnsPromptly(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := h.submit(ctx, cmd(lease.OpClaim, "a"), cmd(lease.OpExtend, "b"))
	e := h.nextEntry()
	cancel()
	a := h.recv(ch)
	if codeOf(a.err) != lease.CodeCanceled || !errors.Is(a.err, ErrMayHaveApplied) || !errors.Is(a.err, context.Canceled) {
		t.Fatalf("got %v, want canceled, may have applied", a.err)
	}
	e.resolve(nil) // the late result is discarded
	h.waitFor("slot freed", func() bool { return h.q.Stats().InFlight == 0 })
}

func TestPerOpTypeDeadlineInRunner(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	cl := h.submit(context.Background(), cmd(lease.OpClaim, "claim"))
	ex := h.submit(context.Background(), cmd(lease.OpExtend, "extend"))
	h.waitFor("both queued", func() bool { return h.depth() == 2 })
	h.clock.Advance(5 * time.Second) // kills a 3 s claim, not a 10 s extend
	e1.resolve(nil)
	e2 := h.nextEntry()
	if got := e2.holders(); len(got) != 1 || got[0] != "h-extend" {
		t.Fatalf("entry %v, want only the extend", got)
	}
	e2.resolve(nil)
	if a := h.recv(cl); codeOf(a.err) != lease.CodeDeadlineExceeded {
		t.Fatalf("claim: %v", a.err)
	}
	if a := h.recv(ex); a.err != nil {
		t.Fatalf("extend: %v", a.err)
	}
	if h.p.wasProposed("h-claim") {
		t.Fatal("expired claim proposed")
	}
}

func TestDeadlineConvertedToReplicatedTime(t *testing.T) {
	h := newHarness(t, nil)
	margin := h.q.Settings().DeadlineMargin
	ctx, cancel := context.WithDeadline(context.Background(), h.clock.Now().Add(5*time.Second))
	defer cancel()
	ch := h.submit(ctx, cmd(lease.OpExtend, "e"), cmd(lease.OpClaim, "c"))
	e := h.nextEntry()
	want := []time.Duration{100*time.Second + 5*time.Second - margin, 100*time.Second + 3*time.Second - margin}
	for i, c := range e.cmds {
		if c.Deadline != want[i] {
			t.Fatalf("cmd %d deadline %v, want %v", i, c.Deadline, want[i])
		}
	}
	e.resolve(nil)
	h.recv(ch)
}

func TestBulkSubmitSplitInOrder(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxOpsPerEntry = 4; s.MaxQueuedOps = 64; s.MaxInFlight = 1 })
	var cmds []lease.Command
	for i := range 10 {
		cmds = append(cmds, cmd(lease.OpExtend, fmt.Sprintf("k%02d", i)))
	}
	ch := h.submit(context.Background(), cmds...)
	var got []string
	for _, want := range []int{4, 4, 2} {
		e := h.nextEntry()
		if len(e.cmds) != want {
			t.Fatalf("entry of %d ops, want %d", len(e.cmds), want)
		}
		got = append(got, e.holders()...)
		e.resolve(nil)
	}
	a := h.recv(ch)
	if a.err != nil || len(a.res) != 10 {
		t.Fatalf("answer %+v", a)
	}
	for i := range 10 {
		h := fmt.Sprintf("h-k%02d", i)
		if got[i] != h || a.res[i].Holder != h {
			t.Fatalf("slot %d: proposed %s, result %s", i, got[i], a.res[i].Holder)
		}
	}
}

func TestMixedBulkKeepsOrderInOneEntry(t *testing.T) {
	h := newHarness(t, nil)
	ops := []lease.Op{lease.OpClaim, lease.OpExtend, lease.OpPin, lease.OpRevoke, lease.OpClaim}
	var cmds []lease.Command
	for i, op := range ops {
		cmds = append(cmds, cmd(op, fmt.Sprint("m", i)))
	}
	ch := h.submit(context.Background(), cmds...)
	e := h.nextEntry()
	for i, c := range e.cmds {
		if c.Holder != fmt.Sprint("h-m", i) {
			t.Fatalf("entry order %v", e.holders())
		}
	}
	e.resolve(nil)
	if a := h.recv(ch); a.err != nil || a.res[4].Holder != "h-m4" {
		t.Fatalf("%+v", a)
	}
}

func TestInFlightBound(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 2; s.MaxOpsPerEntry = 1; s.MaxQueuedOps = 64 })
	const n = 20
	var chans []<-chan answer
	for i := range n {
		chans = append(chans, h.submit(context.Background(), cmd(lease.OpClaim, fmt.Sprint("c", i))))
	}
	for range n {
		e := h.nextEntry()
		e.resolve(nil)
	}
	for _, ch := range chans {
		if a := h.recv(ch); a.err != nil {
			t.Fatal(a.err)
		}
	}
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if h.p.maxOut > 2 {
		t.Fatalf("%d entries in flight, bound 2", h.p.maxOut)
	}
}

func TestSetSettingsLive(t *testing.T) {
	// One-op entries, so the queued op is a whole entry, which may go out
	// beside another once MaxInFlight allows it.
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1; s.MaxOpsPerEntry = 1 })
	h.submit(context.Background(), cmd(lease.OpClaim, "a"))
	e1 := h.nextEntry()
	ch := h.submit(context.Background(), cmd(lease.OpClaim, "b"))
	h.waitFor("queued", func() bool { return h.depth() == 1 })
	bad := h.q.Settings()
	bad.MaxInFlight = 0
	if h.q.SetSettings(bad) == nil {
		t.Fatal("bad settings accepted")
	}
	s := h.q.Settings()
	s.MaxInFlight = 2
	if err := h.q.SetSettings(s); err != nil {
		t.Fatal(err)
	}
	e2 := h.nextEntry() // proposed while e1 is still in flight
	e2.resolve(nil)
	e1.resolve(nil)
	h.recv(ch)
}

func TestProposerErrorReachesEveryOp(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	var chans []<-chan answer
	for i := range 5 {
		chans = append(chans, h.submit(context.Background(), cmd(lease.OpClaim, fmt.Sprint("c", i)), cmd(lease.OpExtend, fmt.Sprint("e", i))))
	}
	h.waitFor("queued", func() bool { return h.depth() == 10 })
	h.p.mu.Lock()
	h.p.err = &lease.Error{Code: lease.CodeNotLeader, LeaderID: "n2", LeaderAddr: "10.0.0.2:7000"}
	h.p.mu.Unlock()
	e1.resolve(nil)
	for i, ch := range chans {
		a := h.recv(ch)
		var le *lease.Error
		if !errors.As(a.err, &le) || le.Code != lease.CodeNotLeader || le.LeaderID != "n2" {
			t.Fatalf("caller %d: %v", i, a.err)
		}
	}
}

func TestEntryErrorAfterProposal(t *testing.T) {
	h := newHarness(t, nil)
	ch := h.submit(context.Background(), cmd(lease.OpClaim, "a"))
	h.nextEntry().resolve(lease.Errorf(lease.CodeUnknown, "leadership lost"))
	if a := h.recv(ch); codeOf(a.err) != lease.CodeUnknown {
		t.Fatalf("got %v", a.err)
	}
	h.p.mu.Lock()
	h.p.notLeader = true
	h.p.mu.Unlock()
	ch = h.submit(context.Background(), cmd(lease.OpClaim, "b"))
	if a := h.recv(ch); codeOf(a.err) != lease.CodeNotLeader {
		t.Fatalf("got %v", a.err)
	}
}

// A claim storm is pushed back with a retry-after while extends are still
// admitted and proposed first.
func TestOverloadedRunner(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1; s.MaxOpsPerEntry = 1; s.MaxQueuedOps = 4096 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry()
	// Modelled rate before any measurement: 1 op per 10 ms, so ~300 claims fit 3 s.
	var storm []lease.Command
	for i := range 400 {
		storm = append(storm, cmd(lease.OpClaim, fmt.Sprint("s", i)))
	}
	stormCh := h.submit(context.Background(), storm...)
	h.waitFor("storm queued", func() bool { return h.depth() > 0 })
	a := h.recv(h.submit(context.Background(), cmd(lease.OpClaim, "one-more")))
	var le *lease.Error
	if !errors.As(a.err, &le) || le.Code != lease.CodeOverloaded || le.RetryAfter <= 0 {
		t.Fatalf("claim during storm: %v", a.err)
	}
	ex := h.submit(context.Background(), cmd(lease.OpExtend, "renew"))
	h.waitFor("extend queued", func() bool { return h.q.Stats().Depth[LaneRenewal] == 1 })
	e1.resolve(nil)
	if e := h.nextEntry(); e.holders()[0] != "h-renew" {
		t.Fatalf("next entry %v, want the extend before the storm", e.holders())
	} else {
		e.resolve(nil)
	}
	if a := h.recv(ex); a.err != nil {
		t.Fatal(a.err)
	}
	h.q.Close() // fails the rest of the storm
	sa := h.recv(stormCh)
	if sa.err != nil {
		t.Fatalf("storm: %v", sa.err)
	}
	// Overloaded at admission, Unavailable when closed while queued,
	// Unknown for the one entry in flight at Close.
	var n [3]int
	for _, r := range sa.res {
		switch r.Code {
		case lease.CodeOverloaded:
			n[0]++
		case lease.CodeUnavailable:
			n[1]++
		case lease.CodeUnknown:
			n[2]++
		}
	}
	if n[0] == 0 || n[1] == 0 || n[0]+n[1]+n[2] != 400 {
		t.Fatalf("storm results: %v (overloaded, unavailable, unknown)", n)
	}
}

func TestCloseAnswersEveryone(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
			h.p.plain = plain
			inflight := h.submit(context.Background(), cmd(lease.OpClaim, "a"))
			e := h.nextEntry() // resolved only after Close
			queued := h.submit(context.Background(), cmd(lease.OpClaim, "b"))
			h.waitFor("queued", func() bool { return h.depth() == 1 })
			h.q.Close()
			if a := h.recv(inflight); codeOf(a.err) != lease.CodeUnknown {
				t.Fatalf("in flight: %v", a.err)
			}
			if a := h.recv(queued); codeOf(a.err) != lease.CodeUnavailable {
				t.Fatalf("queued: %v", a.err)
			}
			if _, err := h.q.Submit(context.Background(), []lease.Command{cmd(lease.OpClaim, "c")}); codeOf(err) != lease.CodeUnavailable {
				t.Fatalf("after close: %v", err)
			}
			e.resolve(nil) // a late outcome changes nothing
			if st := h.q.Stats(); st.InFlight != 0 {
				t.Fatalf("in flight after close: %d", st.InFlight)
			}
		})
	}
}

// A future that can call back is answered on the goroutine that resolves
// it: the slot is free and the caller answered before resolve returns, with
// no goroutine of the queue's in between.
func TestNotifyingFutureAnsweredByResolver(t *testing.T) {
	h := newHarness(t, nil)
	ch := h.submit(context.Background(), cmd(lease.OpClaim, "a"))
	e := h.nextEntry()
	h.waitFor("registered", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.notify != nil
	})
	e.resolve(nil)
	if st := h.q.Stats(); st.InFlight != 0 {
		t.Fatalf("in flight right after resolve: %d", st.InFlight)
	}
	if a := h.recv(ch); a.err != nil || a.res[0].Holder != "h-a" {
		t.Fatalf("answer %+v", a)
	}
}

// The goroutine path, for futures without Notify, answers the same way.
func TestPlainFutureAnswered(t *testing.T) {
	h := newHarness(t, nil)
	h.p.plain = true
	ch := h.submit(context.Background(), cmd(lease.OpClaim, "a"), cmd(lease.OpClaim, "b"))
	e := h.nextEntry()
	e.resolve(nil)
	if a := h.recv(ch); a.err != nil || len(a.res) != 2 || a.res[1].Holder != "h-b" {
		t.Fatalf("answer %+v", a)
	}
}

// A caller whose deadline passes after its op was proposed cannot know the
// outcome: it is told Unknown (not DeadlineExceeded, which promises "not
// applied").
func TestDeadlineAfterProposalIsUnknown(t *testing.T) {
	err := lease.ContextError(context.DeadlineExceeded, true)
	if err.Code != lease.CodeUnknown || !errors.Is(err, ErrMayHaveApplied) {
		t.Fatalf("got %v (code %v)", err, err.Code)
	}
	if err := lease.ContextError(context.DeadlineExceeded, false); err.Code != lease.CodeDeadlineExceeded {
		t.Fatalf("before proposal: got %v", err.Code)
	}
}

// While an entry is in flight, ops that do not fill a whole entry wait for
// it to commit and then go out together, instead of each taking an entry
// (and a log write on every member) of its own: at 100 streamed renewers
// that was 0.11 log writes per op against 0.07. Work that fills an entry
// still goes out while fewer than MaxInFlight are in flight.
func TestPartialEntryWaitsWhileOneIsInFlight(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 3; s.MaxOpsPerEntry = 4 })
	first := h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry() // nothing in flight: proposed at once
	var small []<-chan answer
	for i := range 3 {
		small = append(small, h.submit(context.Background(), cmd(lease.OpExtend, fmt.Sprint("s", i))))
	}
	h.waitFor("3 queued", func() bool { return h.depth() == 3 })
	if st := h.q.Stats(); st.InFlight != 1 {
		t.Fatalf("%d entries in flight with a partial entry queued behind one, want 1", st.InFlight)
	}
	// A fourth op makes a full entry: it goes out beside the first.
	small = append(small, h.submit(context.Background(), cmd(lease.OpExtend, "s3")))
	e2 := h.nextEntry()
	if len(e2.cmds) != 4 {
		t.Fatalf("second entry %v, want the 4 queued ops", e2.holders())
	}
	e1.resolve(nil)
	e2.resolve(nil)
	for _, ch := range append(small, first) {
		if a := h.recv(ch); a.err != nil {
			t.Fatal(a.err)
		}
	}
}

// The queue keeps one timer for the deadlines of all its queued ops, not
// one per waiting call (a timer per call was 5% of a server's CPU under
// streamed renewals), and it still answers every queued op at its deadline
// while Raft is stuck.
func TestOneTimerServesEveryQueuedDeadline(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.MaxInFlight = 1 })
	h.submit(context.Background(), cmd(lease.OpExtend, "first"))
	e1 := h.nextEntry() // in flight, unresolved: everything after it queues
	const calls = 20
	var chs []<-chan answer
	for i := range calls {
		chs = append(chs, h.submit(context.Background(), cmd(lease.OpExtend, fmt.Sprintf("x%d", i))))
	}
	h.waitFor("all queued, a timer armed", func() bool {
		return h.depth() == calls && h.clock.PendingWithin(time.Hour) >= 1
	})
	if n := h.clock.PendingWithin(time.Hour); n != 1 {
		t.Fatalf("%d timers pending for %d queued calls, want 1", n, calls)
	}
	h.clock.Advance(11 * time.Second) // past the extends' 10 s default
	for i, ch := range chs {
		if a := h.recv(ch); codeOf(a.err) != lease.CodeDeadlineExceeded || errors.Is(a.err, ErrMayHaveApplied) {
			t.Fatalf("call %d: %v, want deadline exceeded, not applied", i, a.err)
		}
	}
	h.waitFor("no timer left", func() bool { return h.clock.PendingWithin(time.Hour) == 0 })
	e1.resolve(nil)
}
