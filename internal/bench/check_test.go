package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// randomHistory makes a history the way the harness produces one: every
// holder makes one call at a time (strictly increasing Starts, each call
// answered before its next starts), on one key or, to cover Analyse's
// grouping, sometimes two. Codes, tokens and timings are random and small so
// that every rule fires now and then: the histories are mostly not "correct".
func randomHistory(r *rand.Rand) []Record {
	keys := 1 + r.IntN(4)
	holders := 1 + r.IntN(6)
	codes := []lease.Code{lease.CodeOK, lease.CodeOK, lease.CodeOK, lease.CodeDenied, lease.CodeNotHeld,
		lease.CodeUnknown, lease.CodeOverloaded, lease.CodeDeadlineExceeded, lease.CodeCanceled, lease.CodeUnavailable}
	var recs []Record
	for h := range holders {
		onKeys := []int32{int32(r.IntN(keys))}
		if k2 := int32(r.IntN(keys)); k2 != onKeys[0] && r.IntN(2) == 0 {
			onKeys = append(onKeys, k2)
		}
		for _, key := range onKeys {
			t := time.Duration(r.IntN(1000)) * time.Millisecond
			for range r.IntN(12) {
				rec := Record{Key: key, Holder: int32(h), Op: opKind(r.IntN(int(numOpKinds))), Code: codes[r.IntN(len(codes))]}
				rec.Start = t + time.Duration(1+r.IntN(3000))*time.Millisecond
				rec.End = rec.Start + time.Duration(r.IntN(800))*time.Millisecond
				t = rec.End
				if rec.Op != opRevoke {
					rec.Dur = time.Duration(1+r.IntN(4)) * time.Second
				}
				if rec.Code == lease.CodeOK && rec.Op != opRevoke {
					rec.Token = uint64(1 + r.IntN(6))
					rec.Extended = rec.Op == opClaim && r.IntN(3) == 0
				}
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// feedOnline hands recs to a checker as the harness would: each holder's
// calls on a key in Start order, interleaved with the others' by End (a
// holder's next call starts after its previous answer, so End order keeps
// every holder's own order).
func feedOnline(recs []Record) checkSummary {
	byEnd := slices.Clone(recs)
	slices.SortStableFunc(byEnd, func(a, b Record) int { return int(a.End - b.End) })
	ck := newChecker()
	for _, r := range byEnd {
		ck.add(r)
	}
	return ck.finish()
}

// counters drops what legitimately differs between the two (the examples'
// order; the checker's extra counters are compared separately).
func counters(c Correctness) Correctness {
	c.Examples = make([]string, len(c.Examples)) // same number, any order
	return c
}

func TestCheckerMatchesAnalyse(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 100))
	fired := Correctness{}
	for i := range 200 {
		recs := randomHistory(r)
		online := feedOnline(recs)
		offline := Analyse(slices.Clone(recs))
		if got, want := counters(online.Correctness), counters(offline); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("history %d (%d calls): checker %+v, Analyse %+v\n%v", i, len(recs), got, want, recs)
		}
		if online.Checked != uint64(len(recs)) || online.Unordered != 0 {
			t.Fatalf("history %d: checked %d of %d calls, %d out of order", i, online.Checked, len(recs), online.Unordered)
		}
		fired.EarlyExpiries += offline.EarlyExpiries
		fired.LateLosses += offline.LateLosses
		fired.DualHolders += offline.DualHolders
		fired.FencingViolations += offline.FencingViolations
		fired.AppliedAfterDeadline += offline.AppliedAfterDeadline
		fired.PhantomTenures += offline.PhantomTenures
	}
	// The comparison proves little if a rule never fired.
	if fired.EarlyExpiries == 0 || fired.LateLosses == 0 || fired.DualHolders == 0 || fired.FencingViolations == 0 ||
		fired.AppliedAfterDeadline == 0 || fired.PhantomTenures == 0 {
		t.Fatalf("some rule never fired over the random histories: %+v", fired)
	}
}

// TestCheckerCatchesPlantedBugs: each history breaks one promise; the
// checker and Analyse must both count it, and nothing else.
func TestCheckerCatchesPlantedBugs(t *testing.T) {
	ok := func(key, holder int32, op opKind, start, end time.Duration, token uint64) Record {
		return Record{Key: key, Holder: holder, Op: op, Start: start, End: end, Dur: 10 * s, Token: token}
	}
	code := func(r Record, c lease.Code) Record { r.Code, r.Token = c, 0; return r }
	cases := []struct {
		name string
		h    []Record
		want Correctness
		late uint64 // renewals answered ok after the promise ran out
	}{
		{
			name: "two holders overlap",
			h: []Record{
				ok(0, 0, opClaim, 0, s/10, 5),
				ok(0, 1, opClaim, 3*s, 3*s+s/10, 7),
			},
			want: Correctness{DualHolders: 1, Tenures: 2},
		},
		{
			name: "token goes backwards",
			h: []Record{
				ok(0, 0, opClaim, 0, s/10, 9),
				ok(0, 0, opRevoke, s, s+s/10, 0),
				ok(0, 1, opClaim, 2*s, 2*s+s/10, 8),
			},
			want: Correctness{FencingViolations: 1, Tenures: 2},
		},
		{
			name: "lease taken away early",
			h: []Record{
				ok(0, 0, opClaim, 0, s/10, 5),
				code(ok(0, 0, opExtend, 5*s, 5*s+s/10, 0), lease.CodeNotHeld),
			},
			want: Correctness{EarlyExpiries: 1, Tenures: 1},
		},
		{
			name: "renewal after expiry accepted while another holds",
			h: []Record{
				ok(0, 0, opClaim, 0, s/10, 5),
				ok(0, 1, opClaim, 11*s, 11*s+s/10, 6),
				ok(0, 0, opExtend, 12*s, 12*s+s/10, 5),
			},
			want: Correctness{DualHolders: 1, Tenures: 2},
			late: 1,
		},
		{
			name: "claim answered deadline_exceeded was applied",
			h: []Record{
				code(ok(0, 0, opClaim, 0, s/10, 0), lease.CodeDeadlineExceeded),
				ok(0, 0, opExtend, s, s+s/10, 3),
			},
			want: Correctness{AppliedAfterDeadline: 1, Tenures: 1},
			late: 1,
		},
		{
			name: "token changes under an extend",
			h: []Record{
				ok(0, 0, opClaim, 0, s/10, 3),
				ok(0, 0, opExtend, s, s+s/10, 4),
			},
			want: Correctness{PhantomTenures: 1, Tenures: 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			online := feedOnline(tc.h)
			offline := Analyse(slices.Clone(tc.h))
			for who, got := range map[string]Correctness{"checker": online.Correctness, "Analyse": offline} {
				if len(got.Examples) == 0 {
					t.Errorf("%s: no example described", who)
				}
				got.Examples = nil
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("%s: %+v, want %+v", who, got, tc.want)
				}
			}
			if online.RenewalsLate != tc.late {
				t.Errorf("renewals late %d, want %d", online.RenewalsLate, tc.late)
			}
		})
	}
}

// TestCheckerRenewalsOnTime: an extend answered before the previous promise
// ran out is on time; one answered after it is late, even when it succeeds.
func TestCheckerRenewalsOnTime(t *testing.T) {
	ck := newChecker()
	for _, r := range []Record{
		{Key: 3, Holder: 0, Op: opClaim, Start: 0, End: s / 10, Dur: 10 * s, Token: 1},
		{Key: 3, Holder: 0, Op: opExtend, Start: 5 * s, End: 5*s + s/10, Dur: 10 * s, Token: 1},   // promise 10 s
		{Key: 3, Holder: 0, Op: opExtend, Start: 14 * s, End: 16 * s, Dur: 10 * s, Token: 1},      // promise 15 s: late
		{Key: 3, Holder: 0, Op: opExtend, Start: 20 * s, End: 20*s + s/10, Dur: 10 * s, Token: 1}, // promise 24 s
	} {
		ck.add(r)
	}
	got := ck.finish()
	if got.RenewalsOnTime != 2 || got.RenewalsLate != 1 || got.Checked != 4 {
		t.Fatalf("on time %d late %d checked %d, want 2, 1, 4", got.RenewalsOnTime, got.RenewalsLate, got.Checked)
	}
}
