package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// BenchmarkRenewals compares the ways an agent not behind the manager can
// renew, on one 3-node loopback cluster (fsync on, production Raft
// timeouts) in the same run: 100 and 1000 workers over one client, each
// renewing its own held lease in a loop, one renewal at a time, through
//
//   - unary: Client.Extend, one RPC per renewal;
//   - stream: Client.Renewer().Extend, all workers multiplexed on one Renew
//     stream (etcd's LeaseKeepAlive shape);
//   - bulk1: Client.Bulk with one extend per call;
//   - bulk25: the same renewals, 25 per Bulk call (workers/25 callers), the
//     shape of the lease manager's batcher, which packs the renewals due
//     together into one Bulk call.
//
// It reports renewals/s and the process CPU per renewal (the three servers
// and the client all run in this process). Run it with a fixed count, e.g.
//
//	go test ./e2e -run '^$' -bench Renewals -benchtime 100000x
func BenchmarkRenewals(b *testing.B) {
	_, _, c := startBench(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const workers = 1000
	keys := make([]lease.Key, workers)
	for i := range keys {
		keys[i] = key("renew", fmt.Sprintf("held-%d", i))
		if _, err := c.Claim(ctx, keys[i], "h", 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	r := c.Renewer()
	ways := []struct {
		name  string
		renew func(ctx context.Context, k lease.Key) error
	}{
		{"unary", func(ctx context.Context, k lease.Key) error {
			_, err := c.Extend(ctx, k, "h", 5*time.Minute)
			return err
		}},
		{"stream", func(ctx context.Context, k lease.Key) error {
			_, err := r.Extend(ctx, k, "h", 5*time.Minute)
			return err
		}},
		{"bulk1", func(ctx context.Context, k lease.Key) error {
			res, err := c.Bulk(ctx, []lease.Command{{Op: lease.OpExtend, Key: k, Holder: "h", Duration: 5 * time.Minute}})
			if err == nil {
				err = res[0].Err
			}
			return err
		}},
	}
	for _, nw := range []int{100, 1000} {
		b.Run(fmt.Sprintf("bulk25/w%d", nw), func(b *testing.B) { benchBulkBatched(b, c, keys[:nw], 25) })
		for _, w := range ways {
			b.Run(fmt.Sprintf("%s/w%d", w.name, nw), func(b *testing.B) {
				for i := range 200 { // warm the connection (and open the stream)
					if err := w.renew(ctx, keys[i%workers]); err != nil {
						b.Fatal(err)
					}
				}
				var next, failed atomic.Int64
				cpu0 := processCPU()
				b.ResetTimer()
				begin := time.Now()
				var wg sync.WaitGroup
				for wk := range nw {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if err := w.renew(ctx, keys[wk]); err != nil {
								failed.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(begin)
				b.StopTimer()
				cpu := processCPU() - cpu0
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "renewals/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
				if failed.Load() > 0 {
					b.Errorf("%d of %d renewals failed", failed.Load(), b.N)
				}
			})
		}
	}
}

// benchBulkBatched renews keys in Bulk calls of per extends each, with
// len(keys)/per callers, so as many renewals are outstanding as with one
// worker per key.
func benchBulkBatched(b *testing.B, c *client.Client, keys []lease.Key, per int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	callers := len(keys) / per
	var next, failed atomic.Int64
	cpu0 := processCPU()
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmds := make([]lease.Command, per)
			for i := range cmds {
				cmds[i] = lease.Command{Op: lease.OpExtend, Key: keys[w*per+i], Holder: "h", Duration: 5 * time.Minute}
			}
			for next.Add(int64(per)) <= int64(b.N) {
				res, err := c.Bulk(ctx, cmds)
				if err != nil {
					failed.Add(int64(per))
					continue
				}
				for _, r := range res {
					if r.Err != nil {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	cpu := processCPU() - cpu0
	n := next.Load() - int64(callers*per) // renewals actually sent
	b.ReportMetric(float64(n)/elapsed.Seconds(), "renewals/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(max(n, 1)), "cpu-µs/op")
	if failed.Load() > 0 {
		b.Errorf("%d of %d renewals failed", failed.Load(), n)
	}
}
