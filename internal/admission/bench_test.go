package admission

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// instantProposer applies every entry at once.
type instantProposer struct{ entries atomic.Int64 }

type doneFuture struct{ res []lease.Result }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (f doneFuture) Done() <-chan struct{}           { return closedCh }
func (f doneFuture) Result() ([]lease.Result, error) { return f.res, nil }

func (p *instantProposer) Now() (time.Duration, bool) { return time.Hour, true }
func (p *instantProposer) Propose(cmds []lease.Command) (Future, error) {
	p.entries.Add(1)
	return doneFuture{make([]lease.Result, len(cmds))}, nil
}

// BenchmarkSubmit measures single-op Submits from N concurrent submitters
// against a proposer that applies instantly: the queue's own overhead, and
// how well it coalesces when the only latency is its own.
func BenchmarkSubmit(b *testing.B) {
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("submitters=%d", n), func(b *testing.B) {
			p := &instantProposer{}
			q, err := New(p, DefaultSettings())
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			c := cmd(lease.OpExtend, "bench")
			b.ResetTimer()
			start := time.Now()
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmds := []lease.Command{c}
					for next.Add(1) <= int64(b.N) {
						if _, err := q.Submit(context.Background(), cmds); err != nil {
							b.Error(err, fmt.Sprintf("%+v", q.Stats()))
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
			b.ReportMetric(float64(b.N)/float64(p.entries.Load()), "ops/entry")
		})
	}
}

// slowProposer applies every entry after a fixed commit latency.
type slowProposer struct {
	instantProposer
	latency time.Duration
}

type chanFuture struct {
	done chan struct{}
	res  []lease.Result
}

func (f *chanFuture) Done() <-chan struct{}           { return f.done }
func (f *chanFuture) Result() ([]lease.Result, error) { return f.res, nil }

func (p *slowProposer) Propose(cmds []lease.Command) (Future, error) {
	p.entries.Add(1)
	f := &chanFuture{done: make(chan struct{}), res: make([]lease.Result, len(cmds))}
	time.AfterFunc(p.latency, func() { close(f.done) })
	return f, nil
}

// BenchmarkSubmitCommit1ms is BenchmarkSubmit with a 1 ms commit latency:
// group commit at work (ops per entry grows with concurrency).
func BenchmarkSubmitCommit1ms(b *testing.B) {
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("submitters=%d", n), func(b *testing.B) {
			p := &slowProposer{latency: time.Millisecond}
			q, err := New(p, DefaultSettings())
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			c := cmd(lease.OpExtend, "bench")
			b.ResetTimer()
			start := time.Now()
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmds := []lease.Command{c}
					for next.Add(1) <= int64(b.N) {
						if _, err := q.Submit(context.Background(), cmds); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
			b.ReportMetric(float64(b.N)/float64(p.entries.Load()), "ops/entry")
		})
	}
}
