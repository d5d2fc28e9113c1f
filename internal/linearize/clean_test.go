package linearize

import (
	"testing"
	"time"
)

func TestCorrectRunIsClean(t *testing.T) {
	start := time.Now()
	h, reps := runSim(simConfig{seed: 1, clients: 16, keys: 12, ops: 6000, maybeRate: 0.03, dropRate: 0.03})
	rep := Check(h, reps, Options{})
	t.Logf("sim %v; %s", time.Since(start), rep)
	if !rep.OK() {
		t.Fatal(rep)
	}
	if rep.Maybe == 0 || rep.NotApplied == 0 || rep.Ops[KindGet] == 0 {
		t.Fatalf("the run exercised no faults: %s", rep)
	}
}
