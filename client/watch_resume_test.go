package client_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// cutStream fails the second message of the first Watch stream (its first
// event batch): the stream breaks before the client saw any event.
type cutStream struct {
	grpc.ServerStream
	n   int
	cut bool
}

func (s *cutStream) SendMsg(m any) error {
	s.n++
	if s.cut && s.n == 2 {
		return status.Error(codes.Unavailable, "cut")
	}
	return s.ServerStream.SendMsg(m)
}

// TestWatchBreakBeforeFirstEventResumesWhereItBegan is issue 12 hole 6: a
// watch from "now" whose stream breaks before its first event must resume
// at the index it was registered at (its created response says which), not
// from a new "now" that skips the events applied in between.
func TestWatchBreakBeforeFirstEventResumesWhereItBegan(t *testing.T) {
	var mu sync.Mutex
	streams := 0
	reopened := make(chan struct{})
	intercept := grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod != pb.Leasehold_Watch_FullMethodName {
			return h(srv, ss)
		}
		mu.Lock()
		streams++
		n := streams
		mu.Unlock()
		if n == 2 {
			close(reopened)
		}
		return h(srv, &cutStream{ServerStream: ss, cut: n == 1})
	})
	_, cl, _ := setup(t, 1, grpcserver.Options{GRPCOptions: []grpc.ServerOption{intercept}}, nil)
	ctx := ctxT(t)
	k1, k2, k3 := key, lease.Key{Namespace: key.Namespace, Group: key.Group, Name: "two"}, lease.Key{Namespace: key.Namespace, Group: key.Group, Name: "three"}
	if _, err := cl.Claim(ctx, k1, "u/0", time.Minute); err != nil {
		t.Fatal(err)
	}
	w, err := cl.Watch(ctx, client.WatchOptions{Namespace: key.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	type got struct {
		evs []lease.Event
		err error
	}
	next := make(chan got, 1)
	go func() { evs, err := w.Next(); next <- got{evs, err} }()
	if _, err := cl.Claim(ctx, k2, "u/0", time.Minute); err != nil { // its event breaks the stream
		t.Fatal(err)
	}
	<-reopened
	if _, err := cl.Claim(ctx, k3, "u/0", time.Minute); err != nil {
		t.Fatal(err)
	}
	g := <-next
	if g.err != nil || len(g.evs) == 0 || g.evs[0].Key != k2 {
		t.Fatalf("first events after the break: %+v %v; want the claim of %v", g.evs, g.err, k2)
	}
}

// TestWatchCompactedStart: a start index older than the server's history is
// a typed error naming the oldest index it can resume from.
func TestWatchCompactedStart(t *testing.T) {
	c, cl, _ := setup(t, 1, grpcserver.Options{}, nil)
	ctx := ctxT(t)
	// The fake cluster's hub keeps 100,000 events; reset it as a snapshot
	// install would.
	c.ResetWatches(500)
	_, err := cl.Watch(ctx, client.WatchOptions{StartIndex: 3})
	var le *lease.Error
	if !errors.As(err, &le) || !errors.Is(err, lease.ErrCompacted) || le.Index != 501 {
		t.Fatalf("watch from before the history: %v", err)
	}
}
