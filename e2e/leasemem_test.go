package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// BenchmarkOneClientHeldLeaseMemory measures memory per held lease: it
// claims b.N leases (Bulk calls of 1,000) on a 3-node loopback cluster
// running in this process and reports, per lease and per replica, the growth
// of the process RSS (as the running servers hold it, and again after a
// forced GC returned free memory to the OS) and of the live heap. A heap
// profile taken while the servers run shows what holds it:
//
//	LEASEHOLD_BENCH_HEAPPROFILE=heap.out go test ./e2e -run '^$' \
//	    -bench HeldLeaseMemory -benchtime 1000000x
func BenchmarkOneClientHeldLeaseMemory(b *testing.B) {
	// The servers run with GOGC=50 unless the operator sets GOGC
	// (cmd/leasehold/serve_gc.go); measure them the same way. Go's default
	// of 100 lets the RSS read while they run swing with the GC cycle
	// (274-324 B a lease against 218-226 at 50, docs/performance.md 16).
	if _, set := os.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(50))
	}
	e := start(b, func(o *devcluster.Options) {
		fast := o.Raft
		o.Raft = func(c *replica.Config) { fast(c); benchRaft(c) }
	})
	defer e.Close()
	l := e.leader(b)
	c := newClient(b, client.Config{Endpoints: []string{l.ClientAddr}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	runtime.GC()
	debug.FreeOSMemory()
	rss0, heap0 := rssBytes(), liveHeap()
	const bulk, workers = 1000, 8
	var wg sync.WaitGroup
	var overloaded atomic.Int64
	errs := make(chan error, workers)
	b.ResetTimer()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := w * bulk; lo < b.N; lo += workers * bulk {
				cmds := make([]lease.Command, 0, bulk)
				for i := lo; i < min(lo+bulk, b.N); i++ {
					cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: key("mem", fmt.Sprintf("unit-%d", i)), Holder: fmt.Sprintf("agent-%d", i), Duration: 5 * time.Minute})
				}
				// Ops refused Overloaded were not proposed: send them
				// again after the server's hint (on a loaded machine the
				// admission queue pushes back; this benchmark measures
				// memory, not admission).
				for len(cmds) > 0 {
					res, err := c.Bulk(ctx, cmds)
					if err != nil {
						errs <- err
						return
					}
					var again []lease.Command
					var wait time.Duration
					for j, r := range res {
						var le *lease.Error
						if errors.As(r.Err, &le) && le.Code == lease.CodeOverloaded {
							again = append(again, cmds[j])
							wait = max(wait, le.RetryAfter)
							continue
						}
						if r.Err != nil {
							errs <- r.Err
							return
						}
					}
					overloaded.Add(int64(len(again)))
					cmds = again
					time.Sleep(wait)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, "every replica to apply the log", func() bool {
		want := l.Raft().Raft().LastIndex()
		for _, m := range e.Members {
			if m.Raft().State().AppliedIndex < want {
				return false
			}
		}
		return true
	})
	perLease := func(bytes uint64, base uint64) float64 {
		return (float64(bytes) - float64(base)) / float64(b.N) / float64(len(e.Members))
	}
	b.ReportMetric(perLease(rssBytes(), rss0), "rss-B/lease/replica")
	b.ReportMetric(float64(overloaded.Load()), "overloaded-retries")
	runtime.GC()
	b.ReportMetric(perLease(liveHeap(), heap0), "heap-B/lease/replica")
	debug.FreeOSMemory()
	b.ReportMetric(perLease(rssBytes(), rss0), "rss-after-gc-B/lease/replica")
	// -memprofile is written after the cluster is closed; this one is taken
	// while the servers still hold every lease.
	if path := os.Getenv("LEASEHOLD_BENCH_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
}

// rssBytes is this process's resident set (VmRSS).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
