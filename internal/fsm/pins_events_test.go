package fsm

import (
	"reflect"
	"testing"

	"github.com/leasehold/leasehold/lease"
)

func TestPinnedLeaseNeverExpires(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "u/0", 10*sec))
	expectOK(t, h.one(sec, pin(kA, "machine-0")), lease.OutcomePinned)
	h.tick(11 * sec)
	info := h.mustHold(kA, "u/0")
	if !info.Pinned || info.Expiry != 10*sec {
		t.Fatalf("pinned info %+v", info)
	}
	h.tick(1000 * sec)
	h.mustHold(kA, "u/0")
	if _, ok := h.m.Get(kA, 1<<40); !ok {
		t.Fatal("pinned lease hidden at a far read time")
	}
	// Another holder is still denied.
	expectCode(t, h.one(1000*sec, claim(kA, "u/1", min)), lease.CodeDenied)
	checkHeap(t, h.m)
	// Unpin of an overdue pinned lease expires it at once.
	expectOK(t, h.one(1001*sec, unpin(kA, "machine-0")), lease.OutcomeUnpinned)
	h.mustBeAbsent(kA)
	if len(h.m.Pinned()) != 0 || len(h.m.pins) != 0 {
		t.Fatalf("pins left: %v", h.m.Pinned())
	}
	checkHeap(t, h.m)
}

func TestPinsPerEntity(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "u/0", 10*sec))
	h.apply(sec, pin(kA, "m/0"), pin(kA, "m/1"), pin(kA, "m/1")) // duplicate pin is idempotent
	want := map[lease.Key][]string{kA: {"m/0", "m/1"}}
	if got := h.m.Pinned(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Pinned = %v", got)
	}
	h.tick(20 * sec)
	expectOK(t, h.one(20*sec, unpin(kA, "m/1")), lease.OutcomeUnpinned)
	h.mustHold(kA, "u/0") // m/0 still pins it
	h.tick(30 * sec)
	h.mustHold(kA, "u/0")
	// Unpin by an entity that never pinned: success, no change.
	expectOK(t, h.one(30*sec, unpin(kA, "m/9")), lease.OutcomeUnpinned)
	expectOK(t, h.one(30*sec, unpin(kB, "m/9")), lease.OutcomeUnpinned)
	h.mustHold(kA, "u/0")
	h.one(31*sec, unpin(kA, "m/0"))
	h.mustBeAbsent(kA)
}

func TestUnpinBeforeExpiryResumesNormalExpiry(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "u/0", 10*sec))
	h.one(sec, pin(kA, "m/0"))
	h.one(5*sec, unpin(kA, "m/0"))
	h.tick(10 * sec)
	h.mustHold(kA, "u/0") // unpinned in time: expires as usual, not at unpin
	h.tick(10*sec + 1)
	h.mustBeAbsent(kA)
}

func TestPinAbsentAppliesToNextHolder(t *testing.T) {
	h := newHarness(t)
	expectOK(t, h.one(0, pin(kA, "m/0")), lease.OutcomePinned)
	h.mustBeAbsent(kA)
	if got := h.m.Pinned(); len(got[kA]) != 1 {
		t.Fatalf("pin of absent key not recorded: %v", got)
	}
	h.one(sec, claim(kA, "u/0", 5*sec))
	h.tick(100 * sec)
	if info := h.mustHold(kA, "u/0"); !info.Pinned {
		t.Fatal("next holder's lease not pinned")
	}
	// The holder may revoke a pinned lease; the pin stays for the next one.
	expectOK(t, h.one(100*sec, revoke(kA, "u/0")), lease.OutcomeRevoked)
	h.mustBeAbsent(kA)
	h.one(101*sec, claim(kA, "u/1", 5*sec))
	h.tick(200 * sec)
	h.mustHold(kA, "u/1")
	checkHeap(t, h.m)
}

func TestExtendOverduePinnedLease(t *testing.T) {
	h := newHarness(t)
	tok := h.one(0, claim(kA, "u/0", 10*sec)).Token
	h.one(0, pin(kA, "m/0"))
	h.tick(50 * sec) // overdue, held by the pin, out of the expiry index
	checkHeap(t, h.m)
	r := h.one(50*sec, extend(kA, "u/0", 10*sec))
	expectOK(t, r, lease.OutcomeExtended)
	if r.Token != tok || r.Start != 50*sec || r.Expiry != 60*sec {
		t.Fatalf("extend of overdue pinned lease %+v", r)
	}
	checkHeap(t, h.m)
	// Unpinning now leaves a lease with time left: it must not expire early.
	h.one(55*sec, unpin(kA, "m/0"))
	h.tick(60 * sec)
	h.mustHold(kA, "u/0")
	h.tick(60*sec + 1)
	h.mustBeAbsent(kA)
	checkHeap(t, h.m)
}

func TestReclaimOverduePinnedLeaseBySameHolder(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "u/0", sec))
	h.one(0, pin(kA, "m/0"))
	h.tick(100 * sec)
	r := h.one(100*sec, claim(kA, "u/0", 5*sec))
	expectOK(t, r, lease.OutcomeExtended)
	if r.Expiry != 100*sec+5*sec {
		t.Fatalf("%+v", r)
	}
	checkHeap(t, h.m)
}

func TestEvents(t *testing.T) {
	h := newHarness(t)
	h.m.TakeEvents()
	h.idx = 9
	h.apply(sec,
		claim(kA, "u/0", 10*sec),  // claimed
		claim(kA, "u/0", 20*sec),  // extended
		claim(kA, "u/0", 5*sec),   // no-op: no event
		claim(kA, "u/1", 20*sec),  // denied: no event
		extend(kA, "u/0", 30*sec), // extended
		claim(kB, "u/1", 10*sec),  // claimed
		revoke(kB, "u/1"),         // revoked
		revoke(kB, "u/1"),         // absent: no event
		pin(kA, "m/0"),            // pinned
		pin(kA, "m/0"),            // already pinned: no event
		unpin(kA, "m/0"),          // unpinned
		unpin(kA, "m/0"),          // not pinned: no event
		claim(kC, "u/2", 5*sec),   // claimed
	)
	ev := h.m.TakeEvents()
	type brief struct {
		kind   lease.EventKind
		key    lease.Key
		holder string
	}
	want := []brief{
		{lease.EventClaimed, kA, "u/0"}, {lease.EventExtended, kA, "u/0"}, {lease.EventExtended, kA, "u/0"},
		{lease.EventClaimed, kB, "u/1"}, {lease.EventRevoked, kB, "u/1"},
		{lease.EventPinned, kA, "m/0"}, {lease.EventUnpinned, kA, "m/0"},
		{lease.EventClaimed, kC, "u/2"},
	}
	if len(ev) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(ev), len(want), ev)
	}
	for i, w := range want {
		e := ev[i]
		if e.Kind != w.kind || e.Key != w.key || e.Holder != w.holder || e.Index != 10 || e.Now != sec {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}
	if ev[0].Token == 0 || ev[2].Token != ev[0].Token || ev[2].Expiry != 31*sec || ev[3].Token <= ev[0].Token {
		t.Errorf("event tokens/expiry: %+v", ev)
	}
	if len(h.m.TakeEvents()) != 0 {
		t.Fatal("TakeEvents did not forget")
	}
	// Expiry events carry the expired lease and the entry that expired it.
	h.tick(20 * sec)
	ev = h.m.TakeEvents()
	if len(ev) != 1 || ev[0].Kind != lease.EventExpired || ev[0].Key != kC || ev[0].Holder != "u/2" || ev[0].Expiry != 6*sec || ev[0].Index != 11 || ev[0].Now != 20*sec {
		t.Fatalf("expiry events %+v", ev)
	}
	// Expiry through the last unpin of an overdue lease.
	h.one(20*sec, pin(kA, "m/0"))
	h.tick(40 * sec)
	h.m.TakeEvents()
	h.one(40*sec, unpin(kA, "m/0"))
	ev = h.m.TakeEvents()
	if len(ev) != 2 || ev[0].Kind != lease.EventUnpinned || ev[1].Kind != lease.EventExpired || ev[1].Key != kA {
		t.Fatalf("unpin expiry events %+v", ev)
	}
	// Off: nothing recorded.
	h.m.RecordEvents(false)
	h.one(41*sec, claim(kA, "u/0", min))
	if len(h.m.TakeEvents()) != 0 {
		t.Fatal("events recorded while off")
	}
}
