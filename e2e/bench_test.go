package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// BenchmarkSaturation saturates a 3-node loopback cluster (bbolt log store, fsync
// on, production Raft timeouts) with concurrent bulk extends of held leases
// and reports, per write mode in the same run:
//
//   - ops/s: extends answered OK per second of wall time;
//   - ops/entry: commands per log entry that carries commands, counted
//     from the leader's log store (clock ticks and directory entries are
//     counted apart and excluded: ticks/op is reported too);
//   - rejected/op: ops refused (Overloaded, DeadlineExceeded...).
//
// b.N is the number of ops. Run it with a fixed count, e.g.
//
//	go test ./e2e -run '^$' -bench Saturation -benchtime 200000x
func BenchmarkSaturation(b *testing.B) {
	for _, mode := range []struct {
		name string
		mode backend.Mode
	}{{"admitted", backend.Admitted}, {"naive", backend.Naive}} {
		benchMode(b, mode.name, mode.mode)
	}
}

const (
	benchWorkers   = 32  // concurrent callers
	benchBulk      = 256 // ops per bulk call
	benchKeysPerWk = 256
)

func benchMode(b *testing.B, name string, mode backend.Mode) {
	e := start(b, func(o *devcluster.Options) {
		fast := o.Raft
		o.Raft = func(c *replica.Config) {
			fast(c)
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.TickInterval = 0, 0, 0, 0
		}
		o.Node = backend.Options{Mode: mode}
	})
	defer e.Close()
	l := e.leader(b)
	c := newClient(b, client.Config{Endpoints: []string{l.ClientAddr}, RetryRatio: 0.001, RetryBurst: 0.001})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Each worker holds its keys for the whole run.
	keys := make([][]lease.Key, benchWorkers)
	for w := range benchWorkers {
		var cmds []lease.Command
		for i := range benchKeysPerWk {
			k := key("bench", fmt.Sprintf("w%d-%d", w, i))
			keys[w] = append(keys[w], k)
			cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: k, Holder: fmt.Sprintf("h%d", w), Duration: 5 * time.Minute})
		}
		res, err := c.Bulk(ctx, cmds)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.Run(name, func(b *testing.B) {
		ps := e.stores[l.ID]
		before := ps.counts()
		applied0 := l.Raft().State().AppliedIndex
		var next, okOps, rejected atomic.Int64
		total := int64(b.N)
		cpu0 := processCPU()
		b.ResetTimer()
		begin := time.Now()
		var wg sync.WaitGroup
		for w := range benchWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				holder := fmt.Sprintf("h%d", w)
				for {
					n := min(int64(benchBulk), total-next.Add(benchBulk)+benchBulk)
					if n <= 0 {
						return
					}
					cmds := make([]lease.Command, n)
					for i := range cmds {
						cmds[i] = lease.Command{Op: lease.OpExtend, Key: keys[w][i%len(keys[w])], Holder: holder, Duration: 5 * time.Minute}
					}
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					res, err := c.Bulk(cctx, cmds)
					cancel()
					if err != nil {
						rejected.Add(n)
						continue
					}
					for _, r := range res {
						if r.Err != nil {
							rejected.Add(1)
						} else {
							okOps.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(begin)
		b.StopTimer()
		cpu := processCPU() - cpu0
		// Entries of calls that gave up may still be committing; count them.
		waitFor(b, time.Minute, "the leader to apply its log", func() bool {
			r := l.Raft().Raft()
			return r.AppliedIndex() >= r.CommitIndex() && r.CommitIndex() >= r.LastIndex()
		})
		d := ps.counts().sub(before)
		applied := l.Raft().State().AppliedIndex - applied0
		b.ReportMetric(float64(okOps.Load())/elapsed.Seconds(), "ops/s")
		// Process CPU (three servers and the client) per op answered.
		b.ReportMetric(float64(cpu.Microseconds())/float64(max(1, okOps.Load())), "cpu-µs/op")
		if d.opEntries > 0 {
			b.ReportMetric(float64(d.ops)/float64(d.opEntries), "ops/entry")
		}
		b.ReportMetric(float64(d.ticks)/float64(max(1, b.N)), "ticks/op")
		b.ReportMetric(float64(rejected.Load())/float64(max(1, b.N)), "rejected/op")
		b.Logf("%s N=%d: %d ok, %d rejected in %v; log: %d entries (%d with ops, %d ticks, %d other), raft applied index +%d",
			name, b.N, okOps.Load(), rejected.Load(), elapsed, d.entries, d.opEntries, d.ticks, d.other, applied)
	})
}
