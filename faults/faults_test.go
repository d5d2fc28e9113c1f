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
	goleak.VerifyTestMain(m, testutil.LeakOptions()...)
}

// long reports whether the long suite was asked for:
//
//	LEASEHOLD_FAULTS_LONG=1 go test ./faults -run TestFaults -timeout 60m -v
func long() bool { return os.Getenv("LEASEHOLD_FAULTS_LONG") != "" }

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
			for total < target {
				w.Duration = slice
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
