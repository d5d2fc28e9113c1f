package grpcserver_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// BenchmarkPublishWithWatchers measures the apply path's cost of the watch
// hub (Publish runs on Raft's apply goroutine) with 10,000 registered
// watchers: each op publishes one entry of 16 events, back to back (the
// watchers busy on the other cores: the worst case for the hub's lock).
// apply-µs/op and apply-p99-µs are the time spent inside Publish, what an
// apply waits for; ns/op is the loop's throughput on a saturated machine.
// "distinct": every watcher watches its own key (one of them matches each
// event); "all": every watcher watches the whole namespace.
func BenchmarkPublishWithWatchers(b *testing.B) {
	for _, mode := range []string{"distinct", "all"} {
		b.Run(mode, func(b *testing.B) {
			const watchers = 10_000
			h := grpcserver.NewWatchHub(0, 0)
			ctx, cancel := context.WithCancel(context.Background())
			var wg, ready sync.WaitGroup
			ready.Add(watchers)
			for i := range watchers {
				f := grpcserver.WatchFilter{Namespace: "ns"}
				if mode == "distinct" {
					f = grpcserver.WatchFilter{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", i)}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					first := true
					h.Watch(ctx, 0, f, watchSend(func() {
						if first {
							first = false
							ready.Done()
						}
					}))
				}()
			}
			ready.Wait()
			evs := make([]lease.Event, 16)
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range evs {
					evs[j] = lease.Event{Kind: lease.EventClaimed, Key: lease.Key{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", (i*16+j)%watchers)}, Index: uint64(i + 1)}
				}
				start := time.Now()
				h.Publish(evs)
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			var sum time.Duration
			for _, d := range took {
				sum += d
			}
			slices.Sort(took)
			b.ReportMetric(float64(sum.Microseconds())/float64(len(took)), "apply-µs/op")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "apply-p99-µs")
			b.ReportMetric(float64(took[len(took)-1].Microseconds()), "apply-max-µs")
			cancel()
			wg.Wait()
		})
	}
}

func watchSend(onCall func()) func(uint64, []lease.Event) error {
	return func(uint64, []lease.Event) error { onCall(); return nil }
}
