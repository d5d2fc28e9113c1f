package faults

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/testutil"
)

func TestMain(m *testing.M) {
	// The server binary the process kinds build is removed after the
	// tests; goleak's own check (which exits) runs after that.
	goleak.VerifyTestMain(runThenClean{m}, testutil.LeakOptions()...)
}

type runThenClean struct{ m *testing.M }

func (r runThenClean) Run() int {
	defer RemoveServerBinary()
	return r.m.Run()
}

// long reports whether the long suite was asked for:
//
//	LEASEHOLD_FAULTS_LONG=1 go test ./faults -run TestFaults -timeout 60m -v
//
// LEASEHOLD_FAULTS_BUDGET=25m bounds it (CI uses this).
func long() bool { return os.Getenv("LEASEHOLD_FAULTS_LONG") != "" }

// budgetPerKind bounds the long suite's time per fault kind when
// LEASEHOLD_FAULTS_BUDGET (a duration for the whole suite) is set, so CI can
// run as much of it as fits; a kind that runs out reports how far it got.
func budgetPerKind(t *testing.T) time.Duration {
	v := os.Getenv("LEASEHOLD_FAULTS_BUDGET")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("LEASEHOLD_FAULTS_BUDGET: %v", err)
	}
	return d / time.Duration(len(Kinds))
}

// TestFaults runs every fault kind against a real 3-node cluster under a
// contending workload and checks the seven invariants plus real-time lease
// lengths. By default each kind runs one short slice; the long suite runs
// slices until each kind has at least 10,000 checked ops.
func TestFaults(t *testing.T) {
	for _, k := range Kinds {
		t.Run(k.Name, func(t *testing.T) {
			target, slice := 1, 4*time.Second
			w := Workload{Clients: 9, Keys: 4}
			if long() {
				target, slice = 10000, 20*time.Second
				w.Keys = 6
			}
			total, runs := 0, 0
			var stopBy time.Time
			if b := budgetPerKind(t); b > 0 {
				stopBy = time.Now().Add(b)
			}
			for total < target {
				if !stopBy.IsZero() && runs > 0 && time.Now().Add(slice).After(stopBy) {
					t.Logf("FAULTKIND %s budget spent after %d runs: %d of %d ops", k.Name, runs, total, target)
					break
				}
				w.Duration = max(slice, k.MinSlice)
				out, err := Run(context.Background(), t.TempDir(), k, w)
				if out != nil {
					t.Logf("%s run %d: %s", k.Name, runs, out)
					total += out.Ops
					if !out.OK() {
						t.Errorf("violations under %s:\n%s", k.Name, out)
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				runs++
				if out.Report.Definite == 0 {
					t.Fatalf("no op succeeded under %s", k.Name)
				}
			}
			t.Logf("FAULTKIND %s ops=%d runs=%d", k.Name, total, runs)
		})
	}
}
