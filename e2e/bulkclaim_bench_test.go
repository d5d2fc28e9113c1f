package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// BenchmarkBulkClaim claims fresh keys in Bulk calls of 256 from 10 callers
// (the ceilings' bulk-claim shape) on a 3-node loopback cluster, fsync on,
// and reports claims/s and the process CPU per claim (servers and client).
//
//	go test ./e2e -run '^$' -bench BulkClaim -benchtime 200000x
func BenchmarkBulkClaim(b *testing.B) {
	_, _, c := startBench(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const callers, per = 10, 256
	var next, failed atomic.Int64
	cpu0 := processCPU()
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("h%d", w)
			for {
				end := next.Add(per)
				if end-per >= int64(b.N) {
					return
				}
				cmds := make([]lease.Command, 0, per)
				for i := end - per; i < min(end, int64(b.N)); i++ {
					cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: key("bulkclaim", fmt.Sprintf("k%d", i)), Holder: holder, Duration: 5 * time.Minute})
				}
				res, err := c.Bulk(ctx, cmds)
				if err != nil {
					failed.Add(int64(len(cmds)))
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "claims/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	if failed.Load() > 0 {
		b.Errorf("%d of %d claims failed", failed.Load(), b.N)
	}
}
