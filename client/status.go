package client

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
)

// Status is one server's view of the cluster.
type Status struct {
	ID           string
	State        string // leader, follower, candidate, shutdown
	LeaderID     string
	LeaderAddr   string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	Now          time.Duration // replicated time of the last applied entry
	Leases       int64
	QueueDepth   int64
	Members      []Member
}

// Member is one server of the cluster.
type Member struct {
	ID         string
	RaftAddr   string
	ClientAddr string
	HTTPAddr   string
	Voter      bool
	Leader     bool
}

func statusOf(r *pb.StatusResponse) *Status {
	st := &Status{ID: r.Id, State: r.State, LeaderID: r.LeaderId, LeaderAddr: r.LeaderAddr, Term: r.Term,
		CommitIndex: r.CommitIndex, AppliedIndex: r.AppliedIndex, LastIndex: r.LastIndex, Now: time.Duration(r.NowNs),
		Leases: r.Leases, QueueDepth: r.QueueDepth}
	for _, m := range r.Members {
		st.Members = append(st.Members, Member{ID: m.Id, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HTTPAddr: m.HttpAddr, Voter: m.Voter, Leader: m.Leader})
	}
	return st
}

// Status returns the view of one server: the leader if the client knows it,
// else the first that answers.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st *Status
	err := c.do(ctx, kindRead, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := ep.api.Status(ctx, &pb.StatusRequest{}, grpc.Peer(p))
		if err == nil {
			ep.setID(r.Id)
			st = statusOf(r)
		}
		return err
	})
	return st, err
}

// EndpointStatus is one configured endpoint's status or error.
type EndpointStatus struct {
	Endpoint string
	Status   *Status
	Err      error
}

// StatusAll asks every endpoint for its status in parallel, once each (no
// retries), and returns the answers in endpoint order.
func (c *Client) StatusAll(ctx context.Context) []EndpointStatus {
	eps := c.endpoints()
	out := make([]EndpointStatus, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Endpoint = ep.addr
			var p peer.Peer
			r, err := ep.api.Status(ctx, &pb.StatusRequest{}, grpc.Peer(&p))
			if err != nil {
				out[i].Err = c.classify(ctx, err, kindStale, &p)
				return
			}
			ep.setID(r.Id)
			out[i].Status = statusOf(r)
			if r.State == "leader" {
				c.setLeader(ep)
			}
		}()
	}
	wg.Wait()
	return out
}
