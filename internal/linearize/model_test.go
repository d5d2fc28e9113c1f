package linearize

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
	"pgregory.net/rapid"
)

var k1 = lease.Key{Namespace: "ns", Group: "g", Name: "k"}

const s = time.Second

// hb builds a hand-written history; ops are sequential unless times overlap.
type hb struct{ ops []Operation }

func (h *hb) add(client int, call, ret int64, in Input, out Output) *hb {
	if in.Key == (lease.Key{}) {
		in.Key = k1
	}
	h.ops = append(h.ops, Operation{ID: len(h.ops), Client: client, Input: in, Call: call, Return: ret, Returned: ret >= 0, Output: out})
	return h
}

func claim(holder string, d time.Duration) Input {
	return Input{Kind: KindClaim, Holder: holder, Duration: d, Deadline: 1000 * s}
}

func granted(holder string, tok uint64, now, d time.Duration) Output {
	return Output{Outcome: lease.OutcomeGranted, Holder: holder, Token: tok, Start: now, Expiry: now + d, Now: now}
}

func get() Input { return Input{Kind: KindGet} }

func held(holder string, tok uint64, start, exp, at time.Duration) Output {
	return Output{Found: true, Holder: holder, Token: tok, Start: start, Expiry: exp, Now: at}
}

func TestExpiryIsStrict(t *testing.T) {
	base := func() *hb {
		return new(hb).add(0, 1, 2, claim("a", 10*s), granted("a", 1, 0, 10*s))
	}
	// At exactly start+duration the lease is still held.
	ok := base().add(1, 3, 4, get(), held("a", 1, 0, 10*s, 10*s)).
		add(1, 5, 6, claim("b", 5*s), Output{Code: lease.CodeDenied, Holder: "a", Token: 1, Expiry: 10 * s, Now: 10 * s})
	if rep := Check(ok.ops, nil, Options{}); !rep.OK() {
		t.Fatal(rep)
	}
	// Granting it to b at start+duration is an early expiry.
	bad := base().add(1, 5, 6, claim("b", 5*s), granted("b", 2, 10*s, 5*s))
	if rep := Check(bad.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(1) || !rep.Has(7) {
		t.Fatalf("early grant not reported:\n%s", rep)
	} else if len(rep.Visualizations) != 1 {
		t.Fatalf("no visualization: %s", rep)
	} else if _, err := os.Stat(rep.Visualizations[0]); err != nil {
		t.Fatal(err)
	}
	// A read saying absent at start+duration is an early expiry too.
	bad = base().add(1, 3, 4, get(), Output{Now: 10 * s})
	if rep := Check(bad.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(3) || !rep.Has(7) {
		t.Fatalf("early absence not reported:\n%s", rep)
	}
	// One nanosecond later it is gone.
	ok = base().add(1, 5, 6, claim("b", 5*s), granted("b", 2, 10*s+1, 5*s))
	if rep := Check(ok.ops, nil, Options{}); !rep.OK() {
		t.Fatal(rep)
	}
}

// A read served at a clock reading ahead of an entry proposed before it
// (issue 12 hole 5): the extend stamped 2s, still in flight, keeps the lease
// granted until 2s held without a gap, yet the read at 2.5s called it absent.
func TestReadAheadOfProposedEntry(t *testing.T) {
	h := new(hb).add(0, 1, 2, claim("a", 2*s), granted("a", 1, 0, 2*s)).
		add(1, 3, 8, claim("a", 2*s), Output{Outcome: lease.OutcomeExtended, Holder: "a", Token: 1, Start: 3 * s, Expiry: 5 * s, Now: 3 * s}).
		add(2, 4, 5, get(), Output{Now: 3*s + 500*time.Millisecond}).
		add(2, 9, 10, get(), held("a", 1, 3*s, 5*s, 4*s))
	// An extend at 3s cannot find the lease granted until 2s still held.
	if rep := Check(h.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(7) {
		t.Fatalf("extend of an expired lease accepted:\n%s", rep)
	}
	h.ops[1].Output = Output{Outcome: lease.OutcomeExtended, Holder: "a", Token: 1, Start: 2 * s, Expiry: 4 * s, Now: 2 * s}
	h.ops[3].Output = held("a", 1, 2*s, 4*s, 4*s)
	h.ops[2].Output = Output{Now: 2*s + 500*time.Millisecond}
	if rep := Check(h.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(3) || !rep.Has(7) {
		t.Fatalf("read ahead of a proposed extend accepted:\n%s", rep)
	}
	// Served after the extend applied, at the applied state's time, the
	// read sees the lease.
	h.ops[2].Output = held("a", 1, 2*s, 4*s, 2*s)
	if rep := Check(h.ops, nil, Options{}); !rep.OK() {
		t.Fatalf("read after the extend rejected:\n%s", rep)
	}
}

func TestMaybeAppliedClaim(t *testing.T) {
	unknown := Output{Code: lease.CodeUnknown}
	// a's claim is Unknown; b later sees a holding it: fine.
	h := new(hb).add(0, 1, 2, claim("a", 10*s), unknown).
		add(1, 3, 4, claim("b", 5*s), Output{Code: lease.CodeDenied, Holder: "a", Token: 4, Start: 1 * s, Expiry: 11 * s, Now: 2 * s})
	if rep := Check(h.ops, nil, Options{}); !rep.OK() {
		t.Fatal(rep)
	}
	// ... but not with a lease that starts after its deadline.
	h.ops[0].Input.Deadline = s / 2
	if rep := Check(h.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(7) {
		t.Fatalf("grant after the deadline accepted:\n%s", rep)
	}
	// The same claim refused with DeadlineExceeded cannot have made the lease.
	h.ops[0].Input.Deadline = 1000 * s
	h.ops[0].Output = Output{Code: lease.CodeDeadlineExceeded}
	if rep := Check(h.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(4) || !rep.Has(7) {
		t.Fatalf("DeadlineExceeded claim that took effect not reported:\n%s", rep)
	}
	// An Unknown revoke may have ended a's lease early, for later answers only.
	h = new(hb).add(0, 1, 2, claim("a", 10*s), granted("a", 1, 0, 10*s)).
		add(0, 3, 4, Input{Kind: KindRevoke, Holder: "a", Deadline: 1000 * s}, unknown).
		add(1, 5, 6, claim("b", 5*s), granted("b", 2, 2*s, 5*s))
	if rep := Check(h.ops, nil, Options{}); !rep.OK() {
		t.Fatal(rep)
	}
	h.ops[1].Call, h.ops[1].Return = 7, 8 // revoke called after b's grant returned
	if rep := Check(h.ops, nil, Options{VisualizeDir: t.TempDir()}); !rep.Has(1) {
		t.Fatalf("overlap not reported:\n%s", rep)
	}
}

func TestNeverReturnedIsReported(t *testing.T) {
	h := new(hb).add(0, 1, -1, claim("a", 10*s), Output{})
	rep := Check(h.ops, nil, Options{})
	if !rep.Has(6) || rep.Maybe != 1 || len(rep.Violations) != 1 {
		t.Fatal(rep)
	}
}

func TestReplicasDivergeOrLoseWrites(t *testing.T) {
	cfg := simConfig{seed: 11, clients: 8, keys: 3, ops: 400, divergeAt: 40}
	h, reps := runSim(cfg)
	if rep := Check(h, reps[:2], Options{}); !rep.OK() {
		t.Fatal(rep)
	}
	// Replica 2 skipped entries but reached the same applied index.
	if rep := Check(h, reps, Options{}); !rep.Has(5) {
		t.Fatalf("divergent replica not reported:\n%s", rep)
	}
	// Final states that lost every lease.
	empty := []Replica{{ID: "x", Index: 1 << 40, Now: 0}}
	if rep := Check(h, empty, Options{}); !rep.Has(5) {
		t.Fatalf("lost writes not reported:\n%s", rep)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				id := r.Invoke(c, Input{Kind: KindRevoke, Key: k1, Holder: "h"})
				if i%10 == 9 {
					continue // never returns
				}
				r.ReturnError(id, lease.ErrOverloaded)
			}
		}()
	}
	wg.Wait()
	h := r.History()
	if len(h) != 800 || r.Open() != 80 {
		t.Fatalf("%d ops, %d open", len(h), r.Open())
	}
	for _, op := range h {
		if op.Returned && (op.Return < op.Call || op.Applied() != AppliedNo) {
			t.Fatalf("bad op %s", &op)
		}
	}
	if rep := Check(h, nil, Options{}); rep.NotApplied != 720 || rep.Maybe != 80 || len(rep.Violations) != 80 {
		t.Fatal(rep)
	}
}

// Random clusters driving the real state machine, with lost answers and lost
// entries, are always reported clean.
func TestRandomCorrectRunsClean(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := simConfig{
			seed:      rapid.Int64().Draw(t, "seed"),
			clients:   rapid.IntRange(2, 12).Draw(t, "clients"),
			keys:      rapid.IntRange(1, 4).Draw(t, "keys"),
			ops:       rapid.IntRange(10, 400).Draw(t, "ops"),
			maybeRate: rapid.Float64Range(0, 0.2).Draw(t, "maybe"),
			dropRate:  rapid.Float64Range(0, 0.2).Draw(t, "drop"),
		}
		h, reps := runSim(cfg)
		if rep := Check(h, reps, Options{Timeout: 20 * time.Second}); !rep.OK() {
			t.Fatal(rep)
		}
	})
}
