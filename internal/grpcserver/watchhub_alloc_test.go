package grpcserver_test

import (
	"testing"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// TestWatchHubPublishWhenFullIsAmortized is a regression test: once the
// history was full, every Publish copied the whole history into a new slice
// (one large allocation per applied entry, 34% of a saturated leader's CPU
// in the e2e benchmark). Trimming must be amortized.
func TestWatchHubPublishWhenFullIsAmortized(t *testing.T) {
	const history = 1000
	h := grpcserver.NewWatchHub(history, 1)
	for i := uint64(1); i <= history; i++ {
		h.Publish([]lease.Event{ev(i, "a")})
	}
	next := uint64(history + 1)
	one := make([]lease.Event, 1)
	allocs := testing.AllocsPerRun(2*history, func() {
		one[0] = ev(next, "a")
		next++
		h.Publish(one)
	})
	if allocs >= 1 {
		t.Fatalf("%v allocations per Publish on a full history; want amortized < 1", allocs)
	}
}
