package faults

import (
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/lease"
)

// The planted bug is issue 12's reproduction: server 1 (started with a
// longer --max-duration) applied a 7-minute claim that servers 2 and 3
// rejected, so at applied index 20 one replica holds a lease the others
// do not. Samples at other indices are not compared with each other.
func TestCompareReplicasCatchesFlagDivergence(t *testing.T) {
	l := lease.Info{Key: Key(0), Holder: "h", Token: 15, Start: time.Second, Expiry: time.Second + 7*time.Minute}
	samples := []linearize.Replica{
		{ID: "n1", Index: 20, Now: 2 * time.Second, Leases: []lease.Info{l}},
		{ID: "n2", Index: 20, Now: 2 * time.Second},
		{ID: "n3", Index: 19, Now: time.Second},
		{ID: "n3", Index: 21, Now: 3 * time.Second},
	}
	diffs, compared := CompareReplicas(samples)
	if compared != 1 || len(diffs) != 1 {
		t.Fatalf("want 1 comparison with 1 diff, got %d and %v", compared, diffs)
	}
	if d := diffs[0]; d.Index != 20 || d.A != "n1" || d.B != "n2" || !strings.Contains(d.What, "vs absent") {
		t.Fatalf("wrong diff: %v", d)
	}
}

func TestCompareReplicasEqualAndTime(t *testing.T) {
	l := lease.Info{Key: Key(1), Holder: "h", Token: 7, Start: time.Second, Expiry: 3 * time.Second}
	same := []linearize.Replica{
		{ID: "n1", Index: 9, Now: time.Second, Leases: []lease.Info{l}},
		{ID: "n2", Index: 9, Now: time.Second, Leases: []lease.Info{l}},
		{ID: "n2", Index: 9, Now: time.Second, Leases: []lease.Info{l}}, // a repeat of one server is not a pair
		{ID: "n3", Index: 9, Now: time.Second, Leases: []lease.Info{l}},
	}
	if diffs, compared := CompareReplicas(same); len(diffs) != 0 || compared != 3 {
		t.Fatalf("equal replicas: %d comparisons, diffs %v", compared, diffs)
	}
	l2 := l
	l2.Expiry += time.Millisecond
	diffs, _ := CompareReplicas([]linearize.Replica{
		{ID: "n1", Index: 9, Now: time.Second, Leases: []lease.Info{l}},
		{ID: "n2", Index: 9, Now: time.Second, Leases: []lease.Info{l2}},
		{ID: "n1", Index: 10, Now: time.Second},
		{ID: "n2", Index: 10, Now: 2 * time.Second},
	})
	if len(diffs) != 2 || !strings.Contains(diffs[1].What, "replicated time") {
		t.Fatalf("want an expiry diff and a time diff, got %v", diffs)
	}
}
