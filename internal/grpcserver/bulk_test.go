package grpcserver

import (
	"context"
	"sync"
	"testing"
	"time"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// splitProposer applies its first entry and fails every later one with err.
type splitProposer struct {
	mu    sync.Mutex
	calls int
	err   error
}

type doneFuture struct{ res []lease.Result }

func (f doneFuture) Done() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
func (f doneFuture) Result() ([]lease.Result, error) { return f.res, nil }

func (p *splitProposer) Now() (time.Duration, bool) { return time.Minute, true }

func (p *splitProposer) Propose(cmds []lease.Command) (admission.Future, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls++; p.calls > 1 {
		return nil, p.err
	}
	res := make([]lease.Result, len(cmds))
	for i, c := range cmds {
		res[i] = lease.Result{Outcome: lease.OutcomeExtended, Holder: c.Holder, Token: 1, Start: time.Minute, Expiry: 2 * time.Minute, Now: time.Minute}
	}
	return doneFuture{res}, nil
}

// queueBackend is a Backend whose writes go through a real admission queue.
type queueBackend struct{ q *admission.Queue }

func (b queueBackend) Write(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	return b.q.Submit(ctx, cmds)
}
func (queueBackend) Read(context.Context, bool, func(*fsm.Machine, time.Duration)) (ReadMeta, error) {
	return ReadMeta{}, nil
}
func (queueBackend) Status() Status { return Status{} }

// A Bulk whose ops fail in part (its entries split, the second refused)
// carries each failed op's retry-after and leader hint on the wire (issue 12,
// "also fix": mixed results dropped them).
func TestBulkPartialFailureKeepsRetryAfterAndLeaderHint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   *lease.Error
		check func(e *pb.Error) bool
	}{
		{"overloaded", &lease.Error{Code: lease.CodeOverloaded, RetryAfter: 700 * time.Millisecond},
			func(e *pb.Error) bool { return e.RetryAfterMs == 700 }},
		{"not leader", &lease.Error{Code: lease.CodeNotLeader, LeaderID: "n2", LeaderAddr: "10.0.0.2:7070"},
			func(e *pb.Error) bool { return e.LeaderId == "n2" && e.LeaderAddr == "10.0.0.2:7070" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := admission.DefaultSettings()
			st.MaxOpsPerEntry, st.MaxInFlight = 1, 1 // two ops, two entries
			q, err := admission.New(&splitProposer{err: tc.err}, st)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			s := &Server{b: queueBackend{q}, opts: Options{MaxBulkOps: DefaultMaxBulkOps}}
			var ops []*pb.Op
			for _, h := range []string{"a", "b"} {
				c := lease.Command{Op: lease.OpExtend, Key: lease.Key{Namespace: "ns", Group: "g", Name: "k" + h}, Holder: h, Duration: time.Minute}
				ops = append(ops, wire.CommandPB(&c))
			}
			resp, err := s.Bulk(context.Background(), &pb.BulkRequest{Ops: ops})
			if err != nil {
				t.Fatal(err)
			}
			if r := resp.Results[0]; r.Error != nil {
				t.Fatalf("first op: %v", r.Error)
			}
			if e := resp.Results[1].Error; e == nil || e.Code != tc.err.Code.String() || !tc.check(e) {
				t.Fatalf("second op's error %v; want %v with its retry-after and hint", e, tc.err)
			}
		})
	}
}
