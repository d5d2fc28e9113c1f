package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// BenchmarkExpiryLag measures how late leases that stop being renewed
// expire on an idle cluster (only the leader's idle tick advances
// replicated time): b.N leases are claimed in one burst, with durations
// spread over three tick intervals so their due times fall at every phase
// of the tick, and then left alone. A watch on the leader sees each
// expiry. Metrics (ms, over the leases):
//
//   - applied-lag: the replicated time of the entry that expired the lease
//     minus its expiry (Event.Now - Event.Expiry): the tick's share;
//
//   - seen-lag: when the watcher received the expiry, minus the lease's due
//     time in real time (the claim's answer time + its ExpiresIn, a slight
//     over-estimate of the due time, so an under-estimate of the lag by up
//     to a claim's answer latency): tick + commit + watch delivery.
//
//     go test ./e2e -run '^$' -bench ExpiryLag -benchtime 200x
func BenchmarkExpiryLag(b *testing.B) {
	_, l, c := startBench(b)
	tick := l.Raft().TickInterval()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w, err := c.Watch(ctx, client.WatchOptions{Namespace: "e2e", Group: "lag"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()

	const base = 2 * time.Second
	due := make(map[string]time.Time, b.N)
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("u%d", i)
		d := base + time.Duration(i)*3*tick/time.Duration(b.N)
		r, err := c.Claim(ctx, key("lag", name), "h", d)
		if err != nil {
			b.Fatal(err)
		}
		due[name] = time.Now().Add(r.Expiry - r.Now)
	}
	var applied, seen []float64
	for len(seen) < b.N {
		evs, err := w.Next()
		if err != nil {
			b.Fatalf("watch after %d expiries: %v", len(seen), err)
		}
		at := time.Now()
		for _, ev := range evs {
			if ev.Kind != lease.EventExpired {
				continue
			}
			applied = append(applied, float64(ev.Now-ev.Expiry)/1e6)
			seen = append(seen, float64(at.Sub(due[ev.Key.Name]))/1e6)
		}
	}
	b.StopTimer()
	q := func(xs []float64, p float64) float64 {
		slices.Sort(xs)
		return xs[min(len(xs)-1, int(p*float64(len(xs))))]
	}
	b.ReportMetric(float64(tick)/1e6, "tick-ms")
	b.ReportMetric(q(applied, 0.5), "applied-lag-p50-ms")
	b.ReportMetric(q(applied, 0.99), "applied-lag-p99-ms")
	b.ReportMetric(q(seen, 0.5), "seen-lag-p50-ms")
	b.ReportMetric(q(seen, 0.99), "seen-lag-p99-ms")
	b.ReportMetric(q(seen, 1), "seen-lag-max-ms")
}
