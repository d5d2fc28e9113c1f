package client_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// staleGrantServer answers every claim-on-release stream with GRANTED, but
// only the tenure of the second stream is really held: the first is gone by
// the time the client hears of it (revoked behind the stream's back, as a
// retried stream could do before issue 12 hole 3 was fixed).
type staleGrantServer struct {
	pb.UnimplementedLeaseholdServer
	mu      sync.Mutex
	streams int
	extends []uint64 // the token held when each extend arrived (0: none)
}

func (s *staleGrantServer) WaitUntilReleased(r *pb.WaitRequest, st pb.Leasehold_WaitUntilReleasedServer) error {
	s.mu.Lock()
	s.streams++
	tok := uint64(6 + s.streams)
	s.mu.Unlock()
	return st.Send(&pb.WaitResponse{State: pb.WaitState_WAIT_STATE_GRANTED,
		Result: &pb.OpResult{Key: r.Key, Outcome: pb.Outcome_OUTCOME_GRANTED, Holder: r.Holder, Token: tok, ExpiresInMs: r.DurationMs}})
}

func (s *staleGrantServer) Extend(_ context.Context, r *pb.ExtendRequest) (*pb.OpResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams < 2 {
		s.extends = append(s.extends, 0)
		return nil, wire.StatusError(&lease.Error{Code: lease.CodeNotHeld, Message: "lease not held by this holder"})
	}
	s.extends = append(s.extends, 8)
	return &pb.OpResult{Key: r.Key, Outcome: pb.Outcome_OUTCOME_EXTENDED, Holder: r.Holder, Token: 8, ExpiresInMs: r.DurationMs}, nil
}

// TestClaimOnReleaseConfirmsTheGrant: ClaimOnRelease reports a tenure only
// after an extend made after the grant confirmed it (as the manager does),
// so a grant the holder no longer holds is never reported, and the lease's
// remaining time counts from that extend, not from a grant made earlier.
func TestClaimOnReleaseConfirmsTheGrant(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	fake := &staleGrantServer{}
	pb.RegisterLeaseholdServer(gs, fake)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	cl, err := client.New(client.Config{Endpoints: []string{lis.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	r, err := cl.ClaimOnRelease(ctxT(t), key, "h", time.Minute, 0, nil)
	if err != nil || r.Token != 8 || r.Holder != "h" {
		t.Fatalf("got %+v %v; want the confirmed tenure, token 8", r, err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.streams != 2 || len(fake.extends) != 2 {
		t.Fatalf("%d streams, extends %v", fake.streams, fake.extends)
	}
}
