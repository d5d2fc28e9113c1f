package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLeaseholdTargets runs each scenario in a tiny configuration against
// leasehold and naive (3-node clusters, fsync on), the steady one with the
// servers in a child process, and checks the report and that neither
// target breaks a lease.
func TestLeaseholdTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 Leasehold clusters")
	}
	for _, sc := range []string{"steady", "herd", "burst"} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			dir, data := t.TempDir(), t.TempDir()
			o := Options{
				Scenario: sc, Targets: []string{"leasehold", "naive"}, Leases: 30, Claimants: 3,
				LeaseDuration: 2 * time.Second, RenewEvery: time.Second, Duration: 3 * time.Second,
				TimeScale: 1, Sessions: 2, Out: dir, DataDir: data,
			}
			if sc == "steady" {
				o.ServerProcess = childProcess
			}
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			results := readReport(t, dir)["results"].([]any)
			if len(results) != 2 {
				t.Fatalf("%d results", len(results))
			}
			for _, r := range results {
				checkResult(t, r.(map[string]any), true)
			}
			for _, r := range rep.Results {
				if r.AppliedAfterDeadline == nil || *r.AppliedAfterDeadline != 0 || r.PhantomTenures != 0 || !r.AppliedAfterDeadlineMeasured {
					t.Errorf("%s: applied after deadline %v (measured %v), phantoms %d: %v",
						r.Target, r.AppliedAfterDeadline, r.AppliedAfterDeadlineMeasured, r.PhantomTenures, r.Violations)
				}
				if r.BulkCalls != 0 {
					t.Errorf("%s: %d bulk calls without --bulk: the client shape must be the same for every target", r.Target, r.BulkCalls)
				}
				wantScope := "process"
				if sc == "steady" {
					wantScope = "servers"
				}
				if r.RSSScope != wantScope {
					t.Errorf("%s: rss scope %q, want %q", r.Target, r.RSSScope, wantScope)
				}
			}
			md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
			if !strings.Contains(string(md), "leasehold/naive") {
				t.Errorf("report.md lacks the leasehold/naive ratio")
			}
			// Every cluster's data directory is gone.
			if ents, _ := os.ReadDir(data); len(ents) != 0 {
				t.Errorf("data left behind: %v", ents)
			}
		})
	}
}
