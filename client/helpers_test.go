package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

var key = lease.Key{Namespace: "app-leadership", Group: "model-1", Name: "mysql"}

// sleeps records the client's backoff sleeps instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// setup starts an n-node fake cluster and a client of all its nodes, with
// recorded sleeps and a fixed jitter of 0.5.
func setup(t *testing.T, n int, opts grpcserver.Options, tweak func(*client.Config)) (*servertest.Cluster, *client.Client, *sleeps) {
	t.Helper()
	c := servertest.NewCluster(n)
	addrs := servertest.Start(t, c, opts)
	sl := &sleeps{}
	cfg := client.Config{Endpoints: addrs, Sleep: sl.sleep, Rand: func() float64 { return 0.5 }}
	if tweak != nil {
		tweak(&cfg)
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl, sl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// writeCounter counts writes per node through the OnWrite hook, after
// running inject (if any) for its error.
type writeCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func countWrites(c *servertest.Cluster, inject func(node string, cmds []lease.Command) error) *writeCounter {
	wc := &writeCounter{counts: map[string]int{}}
	c.SetOnWrite(func(_ context.Context, node string, cmds []lease.Command) error {
		wc.mu.Lock()
		wc.counts[node]++
		wc.mu.Unlock()
		if inject != nil {
			return inject(node, cmds)
		}
		return nil
	})
	return wc
}

func (w *writeCounter) get(node string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[node]
}

func (w *writeCounter) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.counts {
		n += v
	}
	return n
}
