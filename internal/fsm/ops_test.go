package fsm

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

func TestClaim(t *testing.T) {
	h := newHarness(t)
	r := h.one(10*sec, claim(kA, "u/0", min))
	expectOK(t, r, lease.OutcomeGranted)
	if r.Holder != "u/0" || r.Token == 0 || r.Start != 10*sec || r.Expiry != 70*sec || r.Now != 10*sec {
		t.Fatalf("grant %+v", r)
	}
	tok := r.Token

	// Same holder: treated as an extend, token kept.
	r = h.one(20*sec, claim(kA, "u/0", min))
	expectOK(t, r, lease.OutcomeExtended)
	if r.Token != tok || r.Start != 20*sec || r.Expiry != 80*sec {
		t.Fatalf("re-claim %+v", r)
	}
	// Same holder, shorter: success, never shortens.
	r = h.one(21*sec, claim(kA, "u/0", 5*sec))
	expectOK(t, r, lease.OutcomeExtended)
	if r.Token != tok || r.Start != 20*sec || r.Expiry != 80*sec {
		t.Fatalf("shorter re-claim changed the lease: %+v", r)
	}

	// Another holder: denied with the current holder and expiry.
	r = h.one(30*sec, claim(kA, "u/1", min))
	expectCode(t, r, lease.CodeDenied)
	if r.Holder != "u/0" || r.Expiry != 80*sec || r.Now != 30*sec {
		t.Fatalf("denial %+v", r)
	}
	if err := r.Err().(*lease.Error); err.Holder != "u/0" || err.ExpiresIn != 50*sec {
		t.Fatalf("denial error %+v", err)
	}
	info := h.mustHold(kA, "u/0")
	if info.Token != tok || info.Expiry != 80*sec || info.Start != 20*sec || info.Key != kA || info.Pinned {
		t.Fatalf("info %+v", info)
	}

	// A second key gets a different, larger token.
	r2 := h.one(30*sec, claim(kB, "u/1", min))
	expectOK(t, r2, lease.OutcomeGranted)
	if r2.Token <= tok {
		t.Fatalf("token %d not above %d", r2.Token, tok)
	}
	if h.m.Len() != 2 {
		t.Fatalf("Len = %d", h.m.Len())
	}
}

func TestExtend(t *testing.T) {
	h := newHarness(t)
	tok := h.one(0, claim(kA, "u/0", 30*sec)).Token

	r := h.one(10*sec, extend(kA, "u/0", min))
	expectOK(t, r, lease.OutcomeExtended)
	if r.Token != tok || r.Start != 10*sec || r.Expiry != 70*sec {
		t.Fatalf("extend %+v", r)
	}
	// Shorter: success, no-op.
	r = h.one(20*sec, extend(kA, "u/0", 10*sec))
	expectOK(t, r, lease.OutcomeExtended)
	if r.Start != 10*sec || r.Expiry != 70*sec || r.Token != tok {
		t.Fatalf("shorter extend %+v", r)
	}
	// Exactly equal new expiry: no-op too.
	r = h.one(40*sec, extend(kA, "u/0", 30*sec))
	if r.Start != 10*sec || r.Expiry != 70*sec {
		t.Fatalf("equal extend moved start: %+v", r)
	}
	// Non-holder.
	r = h.one(41*sec, extend(kA, "u/1", min))
	expectCode(t, r, lease.CodeNotHeld)
	if r.Holder != "u/0" || r.Expiry != 70*sec {
		t.Fatalf("not-held %+v", r)
	}
	h.mustHold(kA, "u/0")
	// Absent.
	r = h.one(41*sec, extend(kB, "u/0", min))
	expectCode(t, r, lease.CodeNotHeld)
	if r.Holder != "" || r.Token != 0 {
		t.Fatalf("not-held of absent %+v", r)
	}
	h.mustBeAbsent(kB)
	// Extend never grants: after expiry it is not held.
	h.tick(71 * sec)
	h.mustBeAbsent(kA)
	expectCode(t, h.one(72*sec, extend(kA, "u/0", min)), lease.CodeNotHeld)
	h.mustBeAbsent(kA)
}

func TestRevoke(t *testing.T) {
	h := newHarness(t)
	tok := h.one(0, claim(kA, "u/0", min)).Token
	h.one(0, claim(kB, "u/0", min))

	r := h.one(sec, revoke(kA, "u/1"))
	expectCode(t, r, lease.CodeNotHeld)
	if r.Holder != "u/0" {
		t.Fatalf("not-held %+v", r)
	}
	h.mustHold(kA, "u/0")

	r = h.one(2*sec, revoke(kA, "u/0"))
	expectOK(t, r, lease.OutcomeRevoked)
	if r.Token != tok || r.Holder != "u/0" {
		t.Fatalf("revoke %+v", r)
	}
	h.mustBeAbsent(kA)
	h.mustHold(kB, "u/0")
	// Idempotent.
	expectOK(t, h.one(3*sec, revoke(kA, "u/0")), lease.OutcomeAbsent)
	expectOK(t, h.one(3*sec, revoke(kC, "anyone")), lease.OutcomeAbsent)
	// A new grant after a revoke gets a new, larger token.
	r = h.one(4*sec, claim(kA, "u/1", min))
	expectOK(t, r, lease.OutcomeGranted)
	if r.Token <= tok {
		t.Fatalf("token after re-grant %d <= %d", r.Token, tok)
	}
	checkHeap(t, h.m)
}

func TestStrictExpiry(t *testing.T) {
	h := newHarness(t)
	h.one(5*sec, claim(kA, "u/0", 10*sec))
	h.tick(15 * sec) // start + duration == now: still held
	h.mustHold(kA, "u/0")
	expectCode(t, h.one(15*sec, claim(kA, "u/1", min)), lease.CodeDenied)
	h.tick(15*sec + 1) // one nanosecond later: expired
	h.mustBeAbsent(kA)
	if h.m.Len() != 0 || len(h.m.heap) != 0 {
		t.Fatalf("Len %d heap %d", h.m.Len(), len(h.m.heap))
	}
	expectOK(t, h.one(15*sec+1, claim(kA, "u/1", min)), lease.OutcomeGranted)
}

func TestExpiryOnClaimEntryFreesKeyForSameEntry(t *testing.T) {
	h := newHarness(t)
	t1 := h.one(0, claim(kA, "u/0", sec)).Token
	// The entry's clock reading expires the lease before its commands apply.
	r := h.one(2*sec, claim(kA, "u/1", sec))
	expectOK(t, r, lease.OutcomeGranted)
	if r.Token <= t1 {
		t.Fatal("token did not increase")
	}
}

func TestGetAtFutureTime(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "u/0", 10*sec))
	if _, ok := h.m.Get(kA, 10*sec); !ok {
		t.Fatal("lease not visible at its expiry instant")
	}
	if _, ok := h.m.Get(kA, 10*sec+1); ok {
		t.Fatal("lease visible after its expiry")
	}
	// A read time in the past is raised to Now.
	h.tick(5 * sec)
	if _, ok := h.m.Get(kA, -time.Hour); !ok {
		t.Fatal("lease hidden at a past read time")
	}
}

func TestDeadline(t *testing.T) {
	h := newHarness(t)
	h.one(10*sec, claim(kA, "u/0", min))
	before := h.m.AppendSnapshot(nil)
	beforeIdx := h.m.Index()
	cmds := []lease.Command{
		withDeadline(claim(kB, "u/0", min), 20*sec-1),
		withDeadline(extend(kA, "u/0", 2*min), 0),
		withDeadline(revoke(kA, "u/0"), 19*sec),
		withDeadline(pin(kA, "m/0"), -farAway),
		withDeadline(unpin(kA, "m/0"), 20*sec-1),
		withDeadline(claim(kC, "u/0", min), 20*sec), // deadline == entry time: still applies
	}
	res := h.apply(20*sec, cmds...)
	for i, r := range res[:5] {
		if r.Code != lease.CodeDeadlineExceeded || r.Now != 20*sec {
			t.Errorf("command %d: %+v, want deadline_exceeded", i, r)
		}
	}
	expectOK(t, res[5], lease.OutcomeGranted)
	h.mustHold(kA, "u/0")
	h.mustBeAbsent(kB)
	if info := h.mustHold(kA, "u/0"); info.Expiry != 70*sec || info.Pinned {
		t.Fatalf("late extend or pin applied: %+v", info)
	}
	// Apart from the clock, the index and the one granted command, nothing changed.
	ref := New()
	if err := ref.Restore(before); err != nil {
		t.Fatal(err)
	}
	ref.Apply(beforeIdx+1, &logentry.Entry{Kind: logentry.KindBatch, Time: 20 * sec, Commands: []lease.Command{cmds[5]}})
	if string(ref.AppendSnapshot(nil)) != string(h.m.AppendSnapshot(nil)) {
		t.Fatal("expired-deadline commands changed the state")
	}
	// Deadline is checked against the machine's clock, which never goes back:
	// an entry stamped earlier still refuses a deadline before Now.
	r := h.one(5*sec, withDeadline(claim(kB, "u/0", min), 15*sec))
	expectCode(t, r, lease.CodeDeadlineExceeded)
	// Invalid input is reported as invalid even when the deadline passed too.
	r = h.one(20*sec, withDeadline(claim(kB, "", min), 0))
	expectCode(t, r, lease.CodeInvalidArgument)
}

func TestBatchIsolationAndOrder(t *testing.T) {
	h := newHarness(t)
	res := h.apply(sec,
		claim(kA, "u/0", min),       // 0 granted
		claim(kA, "u/1", min),       // 1 denied
		claim(kB, "", min),          // 2 invalid holder
		claim(kB, "u/1", time.Hour), // 3 invalid duration
		lease.Command{Op: 0, Key: kB, Holder: "x", Deadline: farAway}, // 4 unknown op
		lease.Command{Op: 9, Key: kB, Holder: "x", Deadline: farAway}, // 5 unknown op
		claim(key("a/b", "g", "n"), "u", min),                         // 6 invalid namespace
		claim(kB, "u/1", min),                                         // 7 granted
		revoke(kA, "u/0"),                                             // 8 revoked
		claim(kA, "u/1", min),                                         // 9 granted to the next holder in the same entry
		extend(kA, "u/0", min),                                        // 10 not held
		withDeadline(claim(kC, "u/0", min), 0),                        // 11 deadline
		claim(kC, "u/0", min),                                         // 12 granted
	)
	want := []struct {
		code  lease.Code
		out   lease.Outcome
		field string
	}{
		{lease.CodeOK, lease.OutcomeGranted, ""},
		{lease.CodeDenied, lease.OutcomeNone, ""},
		{lease.CodeInvalidArgument, lease.OutcomeNone, "holder"},
		{lease.CodeInvalidArgument, lease.OutcomeNone, "duration"},
		{lease.CodeInvalidArgument, lease.OutcomeNone, "op"},
		{lease.CodeInvalidArgument, lease.OutcomeNone, "op"},
		{lease.CodeInvalidArgument, lease.OutcomeNone, "namespace"},
		{lease.CodeOK, lease.OutcomeGranted, ""},
		{lease.CodeOK, lease.OutcomeRevoked, ""},
		{lease.CodeOK, lease.OutcomeGranted, ""},
		{lease.CodeNotHeld, lease.OutcomeNone, ""},
		{lease.CodeDeadlineExceeded, lease.OutcomeNone, ""},
		{lease.CodeOK, lease.OutcomeGranted, ""},
	}
	for i, w := range want {
		r := res[i]
		if r.Code != w.code || r.Outcome != w.out || r.Field != w.field || r.Now != sec {
			t.Errorf("result %d: %v/%v field %q, want %v/%v field %q", i, r.Code, r.Outcome, r.Field, w.code, w.out, w.field)
		}
		if w.field != "" && r.Message == "" {
			t.Errorf("result %d: invalid without a message", i)
		}
	}
	if !(res[0].Token < res[7].Token && res[7].Token < res[9].Token && res[9].Token < res[12].Token) {
		t.Errorf("tokens not increasing in apply order: %d %d %d %d", res[0].Token, res[7].Token, res[9].Token, res[12].Token)
	}
	h.mustHold(kA, "u/1")
	h.mustHold(kB, "u/1")
	h.mustHold(kC, "u/0")
	checkHeap(t, h.m)
}

// Commands that never travel through the codec (op 0) must still fail
// alone when applied directly.
func TestApplyDirectInvalidOp(t *testing.T) {
	m := New()
	res := m.Apply(1, &logentry.Entry{Kind: logentry.KindBatch, Time: sec, Commands: []lease.Command{
		{Op: lease.OpInvalid, Key: kA, Holder: "u", Duration: min, Deadline: farAway},
		claim(kA, "u", min),
	}})
	if res[0].Code != lease.CodeInvalidArgument || res[0].Field != "op" || res[1].Outcome != lease.OutcomeGranted {
		t.Fatalf("%+v", res)
	}
}

func TestLimitsApplied(t *testing.T) {
	h := newHarness(t)
	h.settings(0, lease.Limits{MinDuration: 10 * sec, MaxDuration: 20 * sec})
	res := h.apply(sec, claim(kA, "u", 5*sec), claim(kA, "u", 15*sec), claim(kB, "u", 25*sec))
	if res[0].Code != lease.CodeInvalidArgument || res[1].Outcome != lease.OutcomeGranted ||
		res[2].Code != lease.CodeInvalidArgument || res[2].Field != "duration" {
		t.Fatalf("%+v", res)
	}
	h.settings(1, lease.Limits{MinDuration: sec, MaxDuration: sec})
	if h.m.Limits().MaxDuration != sec {
		t.Fatal("settings entry ignored")
	}
	res = h.apply(2*sec, extend(kA, "u", 500*time.Millisecond))
	if res[0].Code != lease.CodeInvalidArgument || res[0].Field != "duration" {
		t.Fatalf("%+v", res)
	}
}

func TestClockNeverGoesBack(t *testing.T) {
	h := newHarness(t)
	h.tick(100 * sec)
	r := h.one(50*sec, claim(kA, "u/0", 10*sec))
	if r.Now != 100*sec || r.Start != 100*sec || r.Expiry != 110*sec {
		t.Fatalf("command applied at an older entry time: %+v", r)
	}
	if h.m.Now() != 100*sec {
		t.Fatalf("Now = %v", h.m.Now())
	}
	h.tick(110 * sec)
	h.mustHold(kA, "u/0")
	h.tick(105 * sec) // going back never resurrects or expires anything
	h.mustHold(kA, "u/0")
	h.tick(110*sec + 1)
	h.mustBeAbsent(kA)
	h.tick(0)
	if h.m.Now() != 110*sec+1 || h.m.Index() != h.idx {
		t.Fatalf("Now %v Index %d", h.m.Now(), h.m.Index())
	}
}

func TestExpiryRemovesGroup(t *testing.T) {
	h := newHarness(t)
	h.apply(0, claim(kA, "u/0", 10*sec), claim(kB, "u/1", 20*sec), claim(kC, "u/2", 30*sec))
	if len(h.m.groups) != 2 {
		t.Fatalf("%d groups", len(h.m.groups))
	}
	h.tick(15 * sec)
	h.mustBeAbsent(kA)
	h.mustHold(kB, "u/1")
	if len(h.m.groups) != 2 {
		t.Fatal("group removed while a lease remains")
	}
	h.tick(25 * sec)
	if len(h.m.groups) != 1 || h.m.groups[groupKey{kA.Namespace, kA.Group}] != nil {
		t.Fatalf("group of the last expired lease kept: %d groups", len(h.m.groups))
	}
	if l := h.m.List(kA.Namespace, kA.Group, lease.Key{}, 0, 0); len(l) != 0 {
		t.Fatalf("List of removed group: %+v", l)
	}
	h.one(26*sec, revoke(kC, "u/2"))
	if len(h.m.groups) != 0 {
		t.Fatal("group of the last revoked lease kept")
	}
	// Reclaiming into a removed group works.
	expectOK(t, h.one(27*sec, claim(kB, "u/9", min)), lease.OutcomeGranted)
	checkHeap(t, h.m)
}

func TestTokensIncreaseWithinOneEntry(t *testing.T) {
	h := newHarness(t)
	var last uint64
	for i := 0; i < 5; i++ {
		res := h.apply(time.Duration(i)*sec, claim(kA, "u/0", min), revoke(kA, "u/0"), claim(kA, "u/1", min), revoke(kA, "u/1"))
		for _, j := range []int{0, 2} {
			if res[j].Outcome != lease.OutcomeGranted || res[j].Token <= last {
				t.Fatalf("entry %d cmd %d: %+v after token %d", i, j, res[j], last)
			}
			last = res[j].Token
		}
	}
	// Restore keeps the token counter.
	m2 := New()
	if err := m2.Restore(h.m.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	r := m2.Apply(h.idx+1, &logentry.Entry{Kind: logentry.KindBatch, Time: time.Hour, Commands: []lease.Command{claim(kA, "u/2", min)}})
	if r[0].Token <= last {
		t.Fatalf("token after restore %d <= %d", r[0].Token, last)
	}
}

func TestSettingsAndMemberEntries(t *testing.T) {
	h := newHarness(t)
	if h.m.Settings() != nil {
		t.Fatal("settings before any entry")
	}
	h.entry(logentry.Entry{Kind: logentry.KindSettings, Time: 5 * sec, Payload: []byte("v1")})
	if string(h.m.Settings()) != "v1" || h.m.Now() != 5*sec {
		t.Fatalf("settings %q now %v", h.m.Settings(), h.m.Now())
	}
	s2 := logentry.Member{ID: "s2", ClientAddr: "10.0.0.2:7000", HTTPAddr: "10.0.0.2:8080"}
	s1 := logentry.Member{ID: "s1", ClientAddr: "10.0.0.1:7000"}
	h.entry(logentry.Entry{Kind: logentry.KindMember, Time: 6 * sec, Payload: logentry.EncodeMember(s2)})
	h.entry(logentry.Entry{Kind: logentry.KindMember, Time: 6 * sec, Payload: logentry.EncodeMember(s1)})
	h.entry(logentry.Entry{Kind: logentry.KindMember, Time: 6 * sec, Payload: []byte{0xff}}) // malformed: ignored
	s1.ClientAddr = "10.0.0.1:7001"
	h.entry(logentry.Entry{Kind: logentry.KindMember, Time: 7 * sec, Payload: logentry.EncodeMember(s1)})
	if got := h.m.Members(); len(got) != 2 || got[0] != s1 || got[1] != s2 {
		t.Fatalf("members %+v", got)
	}
	if got, ok := h.m.Member("s2"); !ok || got != s2 {
		t.Fatalf("Member(s2) = %+v, %v", got, ok)
	}
	if _, ok := h.m.Member("s3"); ok {
		t.Fatal("unknown member found")
	}
	// Both survive a snapshot.
	m2 := New()
	if err := m2.Restore(h.m.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	if string(m2.Settings()) != "v1" || len(m2.Members()) != 2 || m2.Members()[0] != s1 {
		t.Fatalf("restored settings %q members %+v", m2.Settings(), m2.Members())
	}
	// Settings and member entries advance the clock and expire leases too.
	h.one(7*sec, claim(kA, "u", sec))
	h.entry(logentry.Entry{Kind: logentry.KindSettings, Time: 9 * sec, Payload: []byte("v2")})
	h.mustBeAbsent(kA)
	// The payload is copied, not aliased.
	p := []byte("v3")
	h.m.Apply(100, &logentry.Entry{Kind: logentry.KindSettings, Time: 9 * sec, Payload: p})
	p[0] = 'X'
	if string(h.m.Settings()) != "v3" {
		t.Fatal("settings alias the entry payload")
	}
}
