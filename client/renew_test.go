package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

func renewKey(i int) lease.Key {
	return lease.Key{Namespace: "renew", Group: "g", Name: fmt.Sprint(i)}
}

// claimAll claims n keys for holder h with unary calls.
func claimAll(t *testing.T, cl *client.Client, n int) []client.Result {
	t.Helper()
	out := make([]client.Result, n)
	for i := range n {
		r, err := cl.Claim(ctxT(t), renewKey(i), "h", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// Many renewals outstanding at once on one stream: every one is answered
// with its own lease (the answers are matched to their callers by id).
func TestRenewerManyOutstanding(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	const n = 300
	claims := claimAll(t, cl, n)
	// Hold every write until all n renewals are in flight, so they are
	// outstanding together on the one stream.
	var inFlight atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	c.SetOnWrite(func(ctx context.Context, _ string, cmds []lease.Command) error {
		if inFlight.Add(int32(len(cmds))) >= n {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	r := cl.Renewer()
	var wg sync.WaitGroup
	errs := make([]error, n)
	res := make([]client.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = r.Extend(ctxT(t), renewKey(i), "h", 2*time.Minute)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("renewal %d: %v", i, errs[i])
		}
		if res[i].Key != renewKey(i) || res[i].Token != claims[i].Token || res[i].Outcome != lease.OutcomeExtended {
			t.Fatalf("renewal %d answered %+v, want key %v token %d extended", i, res[i], renewKey(i), claims[i].Token)
		}
		if res[i].ExpiresIn <= time.Minute || res[i].RenewAfter <= 0 {
			t.Fatalf("renewal %d: expires in %v, renew after %v: not the 2m extend's answer", i, res[i].ExpiresIn, res[i].RenewAfter)
		}
	}
	// A per-renewal failure is that renewal's answer, as for a unary Extend.
	if _, err := r.Extend(ctxT(t), renewKey(0), "someone-else", time.Minute); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("extend by a non-holder: %v, want not held", err)
	}
}

// A stream that breaks with renewals in flight answers every one of them
// CodeUnknown (the server had them): none is lost or left hanging.
func TestRenewerBrokenStreamAnswersUnknown(t *testing.T) {
	c := servertest.NewCluster(1)
	addrs, stop, err := servertest.Serve(c, grpcserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cl, err := client.New(client.Config{Endpoints: addrs, Sleep: (&sleeps{}).sleep, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 20
	claimAll(t, cl, n)
	var inFlight atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	c.SetOnWrite(func(ctx context.Context, _ string, cmds []lease.Command) error {
		if inFlight.Add(int32(len(cmds))) >= n {
			once.Do(func() { close(all) })
		}
		<-ctx.Done() // held until the stream breaks
		return ctx.Err()
	})
	r := cl.Renewer()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Extend(ctxT(t), renewKey(i), "h", time.Minute)
		}()
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("renewals never reached the server")
	}
	stop() // the connection breaks with all n in flight
	wg.Wait()
	for i, err := range errs {
		if lease.CodeOf(err) != lease.CodeUnknown {
			t.Errorf("renewal %d in flight when the stream broke: %v, want unknown", i, err)
		}
	}
}

// A leader change: renewals held on the old leader are answered NotLeader
// when it steps down, the stream ends, and the client sends them to the new
// leader, where each is applied once.
func TestRenewerLeaderChange(t *testing.T) {
	c, cl, _ := setup(t, 3, grpcserver.Options{}, nil)
	const n = 10
	claimAll(t, cl, n)
	r := cl.Renewer()
	if _, err := r.Extend(ctxT(t), renewKey(0), "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	var held atomic.Int32
	release := make(chan struct{})
	wc := countWrites(c, func(node string, cmds []lease.Command) error {
		if node != "n1" {
			return nil
		}
		held.Add(int32(len(cmds)))
		<-release
		return nil // the fake checks leadership after the hook: NotLeader
	})
	var wg sync.WaitGroup
	errs := make([]error, n)
	res := make([]client.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = r.Extend(ctxT(t), renewKey(i), "h", 3*time.Minute)
		}()
	}
	// Switch leaders while all n are held on n1, then let them go.
	deadline := time.After(10 * time.Second)
	for held.Load() < n {
		select {
		case <-deadline:
			t.Fatal("renewals never reached n1")
		case <-time.After(time.Millisecond):
		}
	}
	c.SetLeader("n2")
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("renewal %d across the leader change: %v", i, errs[i])
		}
		if res[i].ExpiresIn <= 2*time.Minute {
			t.Fatalf("renewal %d: expires in %v, not extended by the new leader", i, res[i].ExpiresIn)
		}
	}
	if got := wc.get("n2"); got == 0 {
		t.Fatalf("no renewal reached the new leader n2 (writes %v)", wc.total())
	}
}

// A caller that gives up gets CodeCanceled at once; the stream stays usable
// for other renewals.
func TestRenewerCancel(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	claimAll(t, cl, 2)
	block := make(chan struct{})
	c.SetOnWrite(func(ctx context.Context, _ string, cmds []lease.Command) error {
		if cmds[0].Key == renewKey(0) {
			close(block)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	r := cl.Renewer()
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() {
		_, err := r.Extend(ctx, renewKey(0), "h", time.Minute)
		done <- err
	}()
	<-block
	cancel()
	if err := <-done; lease.CodeOf(err) != lease.CodeCanceled {
		t.Fatalf("canceled renewal: %v, want canceled", err)
	}
	if _, err := r.Extend(ctxT(t), renewKey(1), "h", time.Minute); err != nil {
		t.Fatalf("renewal after a canceled one: %v", err)
	}
}

// Renewals are refused like any stream over the per-caller stream limit:
// the limit is shared with watches.
func TestRenewerCountsTowardStreamLimit(t *testing.T) {
	_, cl, _ := setup(t, 1, grpcserver.Options{MaxWatchersPerCaller: 1}, func(cfg *client.Config) { cfg.MaxAttempts = 1 })
	claimAll(t, cl, 1)
	w, err := cl.Watch(ctxT(t), client.WatchOptions{Namespace: "renew"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = cl.Renewer().Extend(ctxT(t), renewKey(0), "h", time.Minute)
	if lease.CodeOf(err) != lease.CodeOverloaded {
		t.Fatalf("renewal stream over the per-caller limit: %v, want overloaded", err)
	}
}

// oldServer serves only a unary Extend, as a server older than Renew.
type oldServer struct {
	pb.UnimplementedLeaseholdServer
	extends atomic.Int32
}

func (s *oldServer) Extend(_ context.Context, r *pb.ExtendRequest) (*pb.OpResult, error) {
	s.extends.Add(1)
	return &pb.OpResult{Outcome: pb.Outcome_OUTCOME_EXTENDED, Key: r.Key, Holder: r.Holder, Token: 9, ExpiresInMs: r.DurationMs}, nil
}

// Against a server without Renew (an older one during an upgrade), the
// renewer renews with unary calls: nothing is lost to "unimplemented".
func TestRenewerFallsBackToUnary(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	old := &oldServer{}
	pb.RegisterLeaseholdServer(gs, old)
	go gs.Serve(lis)
	defer gs.Stop()
	cl, err := client.New(client.Config{Endpoints: []string{lis.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 2 {
		r, err := cl.Renewer().Extend(ctxT(t), renewKey(0), "h", time.Minute)
		if err != nil || r.Token != 9 {
			t.Fatalf("renewal %d against a server without Renew: %+v, %v", i, r, err)
		}
	}
	if n := old.extends.Load(); n != 2 {
		t.Fatalf("%d unary extends reached the old server, want 2", n)
	}
}
