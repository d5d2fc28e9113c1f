package fsm

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

func qclaim(k lease.Key, h string, d, wait time.Duration) lease.Command {
	return lease.Command{Op: lease.OpQueueClaim, Key: k, Holder: h, Duration: d, Wait: wait, Deadline: farAway}
}

func cancelQ(k lease.Key, h string) lease.Command {
	return lease.Command{Op: lease.OpCancelQueue, Key: k, Holder: h, Deadline: farAway}
}

func (h *harness) claimedEvents() []lease.Event {
	var out []lease.Event
	for _, e := range h.m.TakeEvents() {
		if e.Kind == lease.EventClaimed {
			out = append(out, e)
		}
	}
	return out
}

func TestQueueClaimAbsentGrantsAndHolderExtends(t *testing.T) {
	h := newHarness(t)
	r := h.one(sec, qclaim(kA, "a", 10*sec, 5*sec))
	expectOK(t, r, lease.OutcomeGranted)
	if r.Token == 0 || r.Expiry != 11*sec {
		t.Fatalf("grant %+v", r)
	}
	r2 := h.one(2*sec, qclaim(kA, "a", 10*sec, 5*sec))
	expectOK(t, r2, lease.OutcomeExtended)
	if r2.Token != r.Token || r2.Expiry != 12*sec {
		t.Fatalf("extend %+v", r2)
	}
	if h.m.QueueLen() != 0 {
		t.Fatalf("holder queued behind itself")
	}
}

func TestQueueClaimQueuesInOrderAndRefreshKeepsPlace(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 10*sec))
	rb := h.one(sec, qclaim(kA, "b", 10*sec, 5*sec))
	rc := h.one(sec, qclaim(kA, "c", 10*sec, 5*sec))
	expectOK(t, rb, lease.OutcomeQueued)
	if rb.Position != 1 || rc.Position != 2 || rb.Holder != "a" || rb.WaitExpiry != 6*sec {
		t.Fatalf("queued %+v %+v", rb, rc)
	}
	// b refreshes: keeps place 1, keep-alive moves on.
	rb2 := h.one(3*sec, qclaim(kA, "b", 10*sec, 5*sec))
	if rb2.Position != 1 || rb2.WaitExpiry != 8*sec {
		t.Fatalf("refresh %+v", rb2)
	}
	// A plain claim by a queued claimant is denied and does not jump.
	expectCode(t, h.one(3*sec, claim(kA, "c", 10*sec)), lease.CodeDenied)
	if got := h.m.Queued(kA); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("queue %v", got)
	}
	h.m.TakeEvents()
	// Revoke wakes exactly b, in the same entry, with a new token.
	res := h.apply(4*sec, revoke(kA, "a"))
	expectOK(t, res[0], lease.OutcomeRevoked)
	info := h.mustHold(kA, "b")
	if info.Start != 4*sec || info.Expiry != 14*sec || info.Token <= res[0].Token {
		t.Fatalf("granted %+v after %+v", info, res[0])
	}
	if ev := h.claimedEvents(); len(ev) != 1 || ev[0].Holder != "b" {
		t.Fatalf("claimed events %+v", ev)
	}
	if got := h.m.Queued(kA); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("queue after grant %v", got)
	}
	// c'sec position is now 1.
	if r := h.one(4*sec, qclaim(kA, "c", 10*sec, 5*sec)); r.Position != 1 || r.Holder != "b" {
		t.Fatalf("c %+v", r)
	}
}

func TestQueueExpiryGrantsNextLiveWaiter(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 10*sec))
	h.one(sec, qclaim(kA, "b", 10*sec, 2*sec)) // dropped after 3s
	h.one(sec, qclaim(kA, "c", 7*sec, 60*sec)) // still waiting at 10s
	h.one(2*sec, qclaim(kA, "d", 7*sec, 60*sec))
	h.tick(4 * sec)
	if got := h.m.Queued(kA); !slices.Equal(got, []string{"c", "d"}) || h.m.QueueLen() != 2 {
		t.Fatalf("queue after b'sec keep-alive %v (%d)", got, h.m.QueueLen())
	}
	h.m.TakeEvents()
	h.tick(10*sec + 1) // a expires strictly after 10s
	info := h.mustHold(kA, "c")
	if info.Expiry != 17*sec+1 {
		t.Fatalf("granted %+v", info)
	}
	if ev := h.claimedEvents(); len(ev) != 1 || ev[0].Holder != "c" {
		t.Fatalf("claimed %+v", ev)
	}
}

func TestQueueNoGrantToWaiterExpiringInSameStep(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 10*sec))
	h.one(sec, qclaim(kA, "b", 10*sec, 5*sec)) // keep-alive 6s
	// One entry at 20s: both a'sec lease and b'sec keep-alive have passed.
	h.tick(20 * sec)
	h.mustBeAbsent(kA)
	if h.m.QueueLen() != 0 {
		t.Fatal("stale waiter kept")
	}
}

func TestQueueCancel(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 10*sec))
	h.one(sec, qclaim(kA, "b", 10*sec, 5*sec))
	h.one(sec, qclaim(kA, "c", 10*sec, 5*sec))
	expectOK(t, h.one(2*sec, cancelQ(kA, "b")), lease.OutcomeDequeued)
	expectOK(t, h.one(2*sec, cancelQ(kA, "b")), lease.OutcomeAbsent)
	expectOK(t, h.one(2*sec, cancelQ(kB, "b")), lease.OutcomeAbsent)
	// Cancel never revokes.
	expectOK(t, h.one(2*sec, cancelQ(kA, "a")), lease.OutcomeAbsent)
	h.mustHold(kA, "a")
	h.one(3*sec, revoke(kA, "a"))
	h.mustHold(kA, "c")
	if h.m.QueueLen() != 0 || len(h.m.queues) != 0 || len(h.m.waitHeap) != 0 {
		t.Fatalf("leftovers: %d %d %d", h.m.QueueLen(), len(h.m.queues), len(h.m.waitHeap))
	}
}

func TestQueueGrantOnLastUnpinOfOverdueLease(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 2*sec))
	h.one(0, pin(kA, "p"))
	h.one(sec, qclaim(kA, "b", 10*sec, 60*sec))
	h.tick(5 * sec)
	h.mustHold(kA, "a") // pinned past expiry
	h.one(6*sec, unpin(kA, "p"))
	h.mustHold(kA, "b")
}

func TestQueueClaimValidation(t *testing.T) {
	h := newHarness(t)
	for name, c := range map[string]lease.Command{
		"no wait":       qclaim(kA, "a", 10*sec, 0),
		"wait too long": qclaim(kA, "a", 10*sec, lease.MaxQueueWait+1),
		"bad duration":  qclaim(kA, "a", 0, sec),
		"no holder":     cancelQ(kA, ""),
	} {
		r := h.m.Apply(99, &logentry.Entry{Kind: logentry.KindBatch, Commands: []lease.Command{c}})[0]
		if r.Code != lease.CodeInvalidArgument {
			t.Errorf("%sec: %+v", name, r)
		}
	}
	// A queued claim past its deadline changes nothing.
	h.one(0, claim(kA, "a", 10*sec))
	expectCode(t, h.one(5*sec, withDeadline(qclaim(kA, "b", 10*sec, 5*sec), 4*sec)), lease.CodeDeadlineExceeded)
	if h.m.QueueLen() != 0 {
		t.Fatal("late queued claim queued")
	}
}

func TestQueueSnapshotRoundTripAndVersion1(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 10*sec))
	h.one(sec, qclaim(kA, "b", 10*sec, 50*sec))
	h.one(sec, qclaim(kA, "c", 9*sec, 40*sec))
	h.one(sec, claim(kB, "x", 10*sec))
	h.one(sec, qclaim(kB, "y", 10*sec, 30*sec))
	snap := h.m.AppendSnapshot(nil)
	m := New()
	if err := m.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Queued(kA), []string{"b", "c"}) || m.QueueLen() != 3 {
		t.Fatalf("restored queue %v", m.Queued(kA))
	}
	// The restored machine behaves like the original from here on.
	m.RecordEvents(true)
	for _, mm := range []*Machine{h.m, m} {
		mm.Apply(10, &logentry.Entry{Kind: logentry.KindBatch, Time: 20 * sec})
	}
	if !bytes.Equal(h.m.AppendSnapshot(nil), m.AppendSnapshot(nil)) {
		t.Fatal("restored machine diverged")
	}
	if info, _ := m.Get(kA, 0); info.Holder != "b" {
		t.Fatalf("restored grant %+v", info)
	}
	// A version-1 snapshot (no queue section) still restores.
	v1 := New()
	v1.Apply(1, &logentry.Entry{Kind: logentry.KindBatch, Time: sec, Commands: []lease.Command{claim(kA, "a", 10*sec)}})
	old := v1.appendSnapshot(nil, 1)
	m1 := New()
	if err := m1.Restore(old); err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if info, ok := m1.Get(kA, 0); !ok || info.Holder != "a" {
		t.Fatalf("version 1 state %+v", info)
	}
}
