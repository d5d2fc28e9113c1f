package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

// renewStream opens a raw Renew stream to addr.
func renewStream(t *testing.T, addr string) pb.Leasehold_RenewClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := pb.NewLeaseholdClient(conn).Renew(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// answers receives until it has one answer per id.
func answers(t *testing.T, s pb.Leasehold_RenewClient, n int) map[uint64]*pb.RenewAnswer {
	t.Helper()
	out := map[uint64]*pb.RenewAnswer{}
	for len(out) < n {
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d of %d answers: %v", len(out), n, err)
		}
		for _, a := range resp.Answers {
			out[a.Id] = a
		}
	}
	return out
}

// Each renewal is answered on its own, with the unary Extend's result or
// error: an invalid one fails alone, a not-held one says who holds it, and
// one whose own deadline passes before it is proposed is deadline_exceeded.
func TestRenewStreamAnswersEachRenewal(t *testing.T) {
	c := servertest.NewCluster(1)
	addr := servertest.Start(t, c, grpcserver.Options{})[0]
	cl := newClient(t, client.Config{Endpoints: []string{addr}})
	if _, err := cl.Claim(ctxT(t), key, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	slow := lease.Key{Namespace: "ns", Group: "g", Name: "slow"}
	if _, err := cl.Claim(ctxT(t), slow, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	c.SetOnWrite(func(ctx context.Context, _ string, cmds []lease.Command) error {
		if cmds[0].Key == slow {
			<-ctx.Done() // held past its own deadline, never proposed
		}
		return nil
	})
	s := renewStream(t, addr)
	send := func(rens ...*pb.Renewal) {
		if err := s.Send(&pb.RenewRequest{Renewals: rens}); err != nil {
			t.Fatal(err)
		}
	}
	send(&pb.Renewal{Id: 1, Key: wire.KeyPB(key), Holder: "h", DurationMs: 120_000},
		&pb.Renewal{Id: 2, Key: wire.KeyPB(key), Holder: "", DurationMs: 1000},
		&pb.Renewal{Id: 3, Key: wire.KeyPB(key), Holder: "other", DurationMs: 1000})
	send(&pb.Renewal{Id: 4, Key: wire.KeyPB(slow), Holder: "h", DurationMs: 1000, TimeoutMs: 50})
	got := answers(t, s, 4)
	if r := got[1].GetResult(); r == nil || r.Outcome != pb.Outcome_OUTCOME_EXTENDED || r.ExpiresInMs <= 60_000 || r.RenewAfterMs <= 0 {
		t.Errorf("renewal 1: %v, want extended to 2m with a renew suggestion", got[1])
	}
	if e := got[2].GetError(); e.GetCode() != "invalid_argument" {
		t.Errorf("renewal 2 (no holder): %v, want invalid_argument", got[2])
	}
	if e := got[3].GetError(); e.GetCode() != "not_held" || e.GetHolder() != "h" {
		t.Errorf("renewal 3 (not the holder): %v, want not_held by h", got[3])
	}
	if e := got[4].GetError(); e.GetCode() != "deadline_exceeded" {
		t.Errorf("renewal 4 (its 50ms deadline passed before proposal): %v, want deadline_exceeded", got[4])
	}
	// Closing the send side ends the stream cleanly.
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}
}

// On a server that is not the leader a renewal is answered not_leader with
// the hint, and then the stream ends with not_leader (and the hint).
func TestRenewStreamEndsNotLeader(t *testing.T) {
	c := servertest.NewCluster(2)
	addrs := servertest.Start(t, c, grpcserver.Options{})
	s := renewStream(t, addrs[1])
	if err := s.Send(&pb.RenewRequest{Renewals: []*pb.Renewal{{Id: 7, Key: wire.KeyPB(key), Holder: "h", DurationMs: 1000}}}); err != nil {
		t.Fatal(err)
	}
	got := answers(t, s, 1)
	if e := got[7].GetError(); e.GetCode() != "not_leader" || e.GetLeaderId() != "n1" || e.GetLeaderAddr() != addrs[0] {
		t.Fatalf("renewal on a follower: %v, want not_leader pointing at n1", got[7])
	}
	_, err := s.Recv()
	st, _ := status.FromError(err)
	e, ok := wire.FromStatus(st)
	if !ok || e.Code != lease.CodeNotLeader || e.LeaderID != "n1" {
		t.Fatalf("stream end on a follower: %v, want not_leader with the hint", err)
	}
}
