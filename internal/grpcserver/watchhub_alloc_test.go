package grpcserver_test

import (
	"runtime"
	"testing"
	"unsafe"

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

// TestWatchHubPublishNeverCopiesTheWindow: on a full history, Publish
// allocates about one event's worth of memory per event it keeps, not
// more. Before, the history was one slice of twice the window: every
// window's worth of publishes allocated (and zeroed) a new slice of two
// windows and copied the live window into it, 8-10 % of the servers' CPU
// in a bulk-claim storm.
func TestWatchHubPublishNeverCopiesTheWindow(t *testing.T) {
	const history = 100_000
	h := grpcserver.NewWatchHub(history, 0)
	batch := make([]lease.Event, 64)
	next := uint64(1)
	publish := func(n int) {
		for range n / len(batch) {
			for i := range batch {
				batch[i] = ev(next, "a")
				next++
			}
			h.Publish(batch)
		}
	}
	publish(3 * history) // full, and past the first copies
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 4 * history
	publish(n)
	runtime.ReadMemStats(&after)
	perEvent := float64(after.TotalAlloc-before.TotalAlloc) / n
	size := float64(unsafe.Sizeof(lease.Event{}))
	if perEvent > 1.25*size {
		t.Fatalf("%.0f bytes allocated per published event (an event is %.0f): the history copies or over-allocates", perEvent, size)
	}
}
