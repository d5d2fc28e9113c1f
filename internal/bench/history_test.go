package bench

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

const s = time.Second

func TestAnalyseCleanHistory(t *testing.T) {
	// Key 0: A holds [0,10) and renews at 5 (until 15), revokes at 12; B is
	// denied at 1, then granted at 13 with a larger token. Key 1: C's lease
	// lapses (extend at 9.5 answered at 10.5 > 10: a late loss, not early)
	// and D takes it at 11.
	h := []Record{
		{Key: 0, Holder: 0, Op: opClaim, Start: 0, End: s / 10, Dur: 10 * s, Token: 5},
		{Key: 0, Holder: 1, Op: opClaim, Code: lease.CodeDenied, Start: 1 * s, End: 1*s + s/10, Dur: 10 * s},
		{Key: 0, Holder: 0, Op: opExtend, Start: 5 * s, End: 5*s + s/10, Dur: 10 * s, Token: 5},
		{Key: 0, Holder: 0, Op: opRevoke, Start: 12 * s, End: 12*s + s/10},
		{Key: 0, Holder: 1, Op: opClaim, Start: 12*s + s/5, End: 13 * s, Dur: 10 * s, Token: 9},
		{Key: 1, Holder: 2, Op: opClaim, Start: 0, End: s / 10, Dur: 10 * s, Token: 6},
		{Key: 1, Holder: 2, Op: opExtend, Code: lease.CodeNotHeld, Start: 9*s + s/2, End: 10*s + s/2, Dur: 10 * s},
		{Key: 1, Holder: 3, Op: opClaim, Start: 11 * s, End: 11*s + s/10, Dur: 10 * s, Token: 11},
		{Key: 1, Holder: 3, Op: opExtend, Code: lease.CodeUnknown, Start: 15 * s, End: 16 * s, Dur: 10 * s},
		// Key 2: E's revoke times out (it applied); F takes the key; E's
		// later claim is denied. E gave up at the revoke's start: neither an
		// early expiry nor a dual holder.
		{Key: 2, Holder: 4, Op: opClaim, Start: 0, End: s / 10, Dur: 10 * s, Token: 7},
		{Key: 2, Holder: 4, Op: opRevoke, Code: lease.CodeUnknown, Start: 3 * s, End: 4 * s},
		{Key: 2, Holder: 5, Op: opClaim, Start: 3*s + s/2, End: 3*s + s/2 + s/10, Dur: 10 * s, Token: 12},
		{Key: 2, Holder: 4, Op: opClaim, Code: lease.CodeDenied, Start: 5 * s, End: 5*s + s/10, Dur: 10 * s},
	}
	rand.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
	c := Analyse(h)
	if c.EarlyExpiries != 0 || c.DualHolders != 0 || c.FencingViolations != 0 {
		t.Fatalf("clean history: %+v", c)
	}
	if c.LateLosses != 1 || c.Tenures != 6 {
		t.Fatalf("late losses %d (want 1), tenures %d (want 6)", c.LateLosses, c.Tenures)
	}
}

func TestAnalyseCountsViolations(t *testing.T) {
	// A is granted [0,10); the server gives the key to B at 3 (dual holder)
	// and answers A's renewal at 5 with not_held (early expiry). On key 1, C
	// is granted token 8 after D's token 9 was granted and answered: a
	// fencing violation, and C's and D's beliefs overlap too.
	h := []Record{
		{Key: 0, Holder: 0, Op: opClaim, Start: 0, End: s / 10, Dur: 10 * s, Token: 5},
		{Key: 0, Holder: 1, Op: opClaim, Start: 3 * s, End: 3*s + s/10, Dur: 10 * s, Token: 7},
		{Key: 0, Holder: 0, Op: opExtend, Code: lease.CodeNotHeld, Start: 5 * s, End: 5*s + s/10, Dur: 10 * s},
		{Key: 1, Holder: 3, Op: opClaim, Start: 0, End: s / 10, Dur: 10 * s, Token: 9},
		{Key: 1, Holder: 2, Op: opClaim, Start: 1 * s, End: 1*s + s/10, Dur: 10 * s, Token: 8},
	}
	c := Analyse(h)
	if len(c.Examples) != 4 {
		t.Errorf("examples: %q", c.Examples)
	}
	c.Examples = nil
	want := Correctness{EarlyExpiries: 1, DualHolders: 2, FencingViolations: 1, Tenures: 4}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	var xs []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(3*time.Millisecond))
		h.add(d)
		xs = append(xs, d)
	}
	slices.Sort(xs)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := xs[int(q*float64(len(xs)))-1]
		got := h.quantile(q)
		if rel := float64(got-exact) / float64(exact); rel < -0.001 || rel > 0.04 {
			t.Errorf("q%.3f: got %v, exact %v (rel %.3f)", q, got, exact, rel)
		}
	}
	if h.quantile(1) != xs[len(xs)-1] {
		t.Errorf("max: got %v want %v", h.quantile(1), xs[len(xs)-1])
	}
	for us := uint64(0); us < 1<<20; us += 7 {
		if i := histIndex(us); histUpper(i) < us || (i > 0 && histUpper(i-1) >= us) {
			t.Fatalf("bucket %d for %d µs: upper %d, previous upper %d", i, us, histUpper(i), histUpper(i-1))
		}
	}
}

// TestAnalyseAppliedAfterDeadline: a claim answered deadline_exceeded whose
// tenure the holder later finds (an extend carrying a token it was never
// given) is counted; the same after an unknown-outcome claim is not.
func TestAnalyseAppliedAfterDeadline(t *testing.T) {
	h := []Record{
		// Key 0: the lie. Holder 0's claim is answered deadline_exceeded,
		// yet its next claim is answered "extended" with a new token.
		{Key: 0, Holder: 0, Op: opClaim, Code: lease.CodeDeadlineExceeded, Start: 0, End: s / 10, Dur: 10 * s},
		{Key: 0, Holder: 0, Op: opClaim, Start: s, End: s + s/10, Dur: 10 * s, Token: 3, Extended: true},
		{Key: 0, Holder: 0, Op: opExtend, Start: 2 * s, End: 2*s + s/10, Dur: 10 * s, Token: 3},
		// Key 1: the same after an unknown outcome: explained.
		{Key: 1, Holder: 1, Op: opClaim, Code: lease.CodeUnknown, Start: 0, End: s / 10, Dur: 10 * s},
		{Key: 1, Holder: 1, Op: opClaim, Code: lease.CodeOverloaded, Start: s / 5, End: s / 4, Dur: 10 * s},
		{Key: 1, Holder: 1, Op: opExtend, Start: s, End: s + s/10, Dur: 10 * s, Token: 4},
		// Key 2: a fresh grant after a rejected claim: fine. Then an extend
		// whose token changed with no claim in between: a phantom.
		{Key: 2, Holder: 2, Op: opClaim, Code: lease.CodeOverloaded, Start: 0, End: s / 10, Dur: 10 * s},
		{Key: 2, Holder: 2, Op: opClaim, Start: s, End: s + s/10, Dur: 10 * s, Token: 5},
		{Key: 2, Holder: 2, Op: opExtend, Start: 2 * s, End: 2*s + s/10, Dur: 10 * s, Token: 6},
	}
	rand.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
	c := Analyse(h)
	if c.AppliedAfterDeadline != 1 || c.PhantomTenures != 1 {
		t.Fatalf("applied after deadline %d (want 1), phantoms %d (want 1): %v", c.AppliedAfterDeadline, c.PhantomTenures, c.Examples)
	}
}
