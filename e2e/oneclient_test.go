package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// BenchmarkOneClient measures the latency of one unary write at a time on a
// 3-node loopback cluster (fsync on, production Raft timeouts), the shape
// where most simple users live: p50/p99 per op, log writes per op summed
// over the three members (each bbolt log write is two fsyncs, each walstore
// write one), and process CPU per op (all three servers and the client run
// in this process). Profile it with the test flags, e.g.
//
//	go test ./e2e -run '^$' -bench OneClient -benchtime 2000x \
//	    -cpuprofile cpu.out -blockprofile block.out -mutexprofile mutex.out
//
// LEASEHOLD_BENCH_STORE (bolt|wal) and LEASEHOLD_BENCH_COMMIT_TIMEOUT (a Go
// duration) pick the log store and Raft's CommitTimeout, so one run can
// compare settings side by side.
func BenchmarkOneClient(b *testing.B) {
	for _, op := range []string{"claim", "extend"} {
		b.Run(op, func(b *testing.B) { benchUnary(b, op, 1) })
	}
}

// BenchmarkOneClientSaturated is the same unary calls from 100 concurrent
// workers over one client (claims of fresh keys; extends of held ones).
func BenchmarkOneClientSaturated(b *testing.B) {
	for _, op := range []string{"claim", "extend"} {
		b.Run(op, func(b *testing.B) { benchUnary(b, op, 100) })
	}
}

// benchRaft applies the production timeouts and the settings named in the
// environment to a member's Raft config.
// startBenchCluster starts a 3-node cluster with production Raft timeouts
// (benchRaft), closed when b ends, and returns it and its leader.
func startBenchCluster(b *testing.B) (*env, *devcluster.Member) {
	e := start(b, func(o *devcluster.Options) {
		fast := o.Raft
		o.Raft = func(c *replica.Config) { fast(c); benchRaft(c) }
	})
	b.Cleanup(func() { e.Close() })
	return e, e.leader(b)
}

// startBench is startBenchCluster with a client of the leader (closed
// before the cluster).
func startBench(b *testing.B) (*env, *devcluster.Member, *client.Client) {
	e, l := startBenchCluster(b)
	return e, l, newClient(b, client.Config{Endpoints: []string{l.ClientAddr}})
}

func benchRaft(c *replica.Config) {
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.TickInterval = 0, 0, 0, 0
	if s := os.Getenv("LEASEHOLD_BENCH_STORE"); s != "" {
		c.LogStore = s
	}
	if s := os.Getenv("LEASEHOLD_BENCH_COMMIT_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			panic(err)
		}
		c.CommitTimeout = d
	}
}

func benchUnary(b *testing.B, op string, workers int) {
	e, l, c := startBench(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	holder := "h"
	keys := make([]lease.Key, max(workers, 1))
	for i := range keys {
		keys[i] = key("one", fmt.Sprintf("held-%d", i))
		if op == "extend" {
			if _, err := c.Claim(ctx, keys[i], holder, 5*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Warm up connections and caches outside the timed window.
	for i := range 50 {
		if _, err := c.Claim(ctx, key("warm", fmt.Sprint(i)), holder, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	writes := func() (n, ns int64) {
		for _, ps := range e.stores {
			n += ps.writes.Load()
			ns += ps.writeNs.Load()
		}
		return n, ns
	}
	w0, ns0 := writes()
	if workers == 1 {
		for _, ps := range e.stores {
			ps.timed.Store(true)
		}
	}
	cpu0 := processCPU()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				var err error
				if op == "claim" {
					_, err = c.Claim(ctx, key("one", fmt.Sprintf("k%d", i)), holder, time.Minute)
				} else {
					_, err = c.Extend(ctx, keys[w], holder, 5*time.Minute)
				}
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	cpu := processCPU() - cpu0
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	w1, ns1 := writes()
	b.ReportMetric(float64(w1-w0)/float64(b.N), "logwrites/op")
	if w1 > w0 {
		// Mean time one member spends in one log write (its fsyncs included).
		b.ReportMetric(float64(ns1-ns0)/1e6/float64(w1-w0), "ms/logwrite")
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	if workers == 1 {
		reportStages(b, e, l.ID)
	}
	if failed.Load() > 0 {
		b.Errorf("%d of %d calls failed", failed.Load(), b.N)
	}
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportStages splits one-client latency by where each entry was: the
// leader's log write, the trip to the first follower to store it (Raft
// sends only after the leader's write), and that follower's log write; the
// rest of p50 is gRPC, admission, the commit notice and the apply.
func reportStages(b *testing.B, e *env, leaderID string) {
	lead := e.stores[leaderID]
	var leaderW, ship, followerW []float64
	lead.timeMu.Lock()
	defer lead.timeMu.Unlock()
	for idx, lt := range lead.times {
		var best [2]int64
		for id, ps := range e.stores {
			if id == leaderID {
				continue
			}
			ps.timeMu.Lock()
			ft, ok := ps.times[idx]
			ps.timeMu.Unlock()
			if ok && (best[1] == 0 || ft[1] < best[1]) {
				best = ft
			}
		}
		if best[1] == 0 {
			continue
		}
		leaderW = append(leaderW, float64(lt[1]-lt[0])/1e6)
		ship = append(ship, float64(best[0]-lt[1])/1e6)
		followerW = append(followerW, float64(best[1]-best[0])/1e6)
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(med(leaderW), "leader-write-ms")
	b.ReportMetric(med(ship), "ship-ms")
	b.ReportMetric(med(followerW), "follower-write-ms")
}
