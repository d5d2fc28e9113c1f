package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/server"
)

// BenchmarkPublishWithWatchers measures the apply path's cost of the watch
// hub (Publish runs on Raft's apply goroutine) with 10,000 registered
// watchers: each op publishes one entry of 16 events. "distinct": every
// watcher watches its own key (one of them matches each event); "all": every
// watcher watches the whole namespace.
func BenchmarkPublishWithWatchers(b *testing.B) {
	for _, mode := range []string{"distinct", "all"} {
		b.Run(mode, func(b *testing.B) {
			const watchers = 10_000
			h := server.NewWatchHub(0, 0)
			ctx, cancel := context.WithCancel(context.Background())
			var wg, ready sync.WaitGroup
			ready.Add(watchers)
			for i := range watchers {
				f := server.WatchFilter{Namespace: "ns"}
				if mode == "distinct" {
					f = server.WatchFilter{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", i)}
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
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range evs {
					evs[j] = lease.Event{Kind: lease.EventClaimed, Key: lease.Key{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", (i*16+j)%watchers)}, Index: uint64(i + 1)}
				}
				h.Publish(evs)
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

func watchSend(onCall func()) func(uint64, []lease.Event) error {
	return func(uint64, []lease.Event) error { onCall(); return nil }
}
