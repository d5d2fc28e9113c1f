package grpcserver_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

// waitFor polls cond (test-side only) until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func queued(c *servertest.Cluster, k lease.Key) []string {
	var q []string
	c.Machine(func(m *fsm.Machine) { q = m.Queued(k) })
	return q
}

func TestWaitUntilReleasedPlain(t *testing.T) {
	c := servertest.NewCluster(1)
	cl := newClient(t, client.Config{Endpoints: servertest.Start(t, c, grpcserver.Options{})})
	ctx := ctxT(t)
	if err := cl.WaitUntilReleased(ctx, key); err != nil {
		t.Fatalf("absent: %v", err)
	}
	if _, err := cl.Claim(ctx, key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cl.WaitUntilReleased(ctx, key) }()
	select {
	case err := <-done:
		t.Fatalf("returned while held: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := cl.Revoke(ctx, key, "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after revoke: %v", err)
	}
	// Cancelling a wait ends it with Canceled.
	cl.Claim(ctx, key, "a", time.Minute)
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- cl.WaitUntilReleased(cctx, key) }()
	cancel()
	if err := <-done; !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestClaimOnReleaseGrantsInOrder(t *testing.T) {
	c := servertest.NewCluster(1)
	cl := newClient(t, client.Config{Endpoints: servertest.Start(t, c, grpcserver.Options{})})
	ctx := ctxT(t)
	first, err := cl.ClaimOnRelease(ctx, key, "a", time.Minute, 0, nil)
	if err != nil || first.Outcome != lease.OutcomeGranted || first.RenewAfter != 30*time.Second {
		t.Fatalf("absent: %+v %v", first, err)
	}
	type got struct {
		r   client.Result
		err error
	}
	start := func(h string, pos int) chan got {
		ch := make(chan got, 1)
		q := make(chan client.Result, 1)
		go func() {
			r, err := cl.ClaimOnRelease(ctx, key, h, time.Minute, 10*time.Second, func(r client.Result) { q <- r })
			ch <- got{r, err}
		}()
		select {
		case r := <-q:
			if r.Position != pos || r.Holder != "a" || r.Outcome != lease.OutcomeQueued {
				t.Fatalf("%s queued %+v", h, r)
			}
		case g := <-ch:
			t.Fatalf("%s not queued: %+v", h, g)
		}
		return ch
	}
	b := start("b", 1)
	cc := start("c", 2)
	if q := queued(c, key); !slices.Equal(q, []string{"b", "c"}) {
		t.Fatalf("queue %v", q)
	}
	cl.Revoke(ctx, key, "a")
	gb := <-b
	if gb.err != nil || gb.r.Holder != "b" || gb.r.Token <= first.Token || gb.r.RenewAfter <= 0 {
		t.Fatalf("b: %+v %v", gb.r, gb.err)
	}
	select {
	case g := <-cc:
		t.Fatalf("c woken by the first release: %+v", g)
	default:
	}
	cl.Revoke(ctx, key, "b")
	if gc := <-cc; gc.err != nil || gc.r.Holder != "c" || gc.r.Token <= gb.r.Token {
		t.Fatalf("c: %+v %v", gc.r, gc.err)
	}
}

func TestClaimOnReleaseCancelGivesUpPlace(t *testing.T) {
	c := servertest.NewCluster(1)
	cl := newClient(t, client.Config{Endpoints: servertest.Start(t, c, grpcserver.Options{})})
	ctx := ctxT(t)
	cl.Claim(ctx, key, "a", time.Minute)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	queuedCh := make(chan struct{}, 1)
	go func() {
		_, err := cl.ClaimOnRelease(cctx, key, "b", time.Minute, time.Minute, func(client.Result) { queuedCh <- struct{}{} })
		done <- err
	}()
	<-queuedCh
	cancel()
	if err := <-done; !errors.Is(err, lease.ErrCanceled) {
		t.Fatalf("cancelled: %v", err)
	}
	waitFor(t, "queued claim withdrawn", func() bool { return len(queued(c, key)) == 0 })
	cl.Revoke(ctx, key, "a")
	if l, _, err := cl.Get(ctx, key); err != nil || l != nil {
		t.Fatalf("lease after revoke: %+v %v", l, err)
	}
}

func TestRenewAfterOnBulk(t *testing.T) {
	c := servertest.NewCluster(1)
	cl := newClient(t, client.Config{Endpoints: servertest.Start(t, c, grpcserver.Options{})})
	res, err := cl.Bulk(ctxT(t), []lease.Command{
		{Op: lease.OpClaim, Key: key, Holder: "a", Duration: 10 * time.Second},
		{Op: lease.OpQueueClaim, Key: key, Holder: "b", Duration: 10 * time.Second, Wait: 5 * time.Second},
		{Op: lease.OpCancelQueue, Key: key, Holder: "b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0].Result; res[0].Err != nil || r.RenewAfter != 5*time.Second {
		t.Fatalf("claim %+v %v", r, res[0].Err)
	}
	if r := res[1].Result; res[1].Err != nil || r.Outcome != lease.OutcomeQueued || r.Position != 1 || r.RenewAfter != 0 {
		t.Fatalf("queue claim %+v %v", r, res[1].Err)
	}
	if r := res[2].Result; res[2].Err != nil || r.Outcome != lease.OutcomeDequeued {
		t.Fatalf("cancel %+v %v", r, res[2].Err)
	}
}
