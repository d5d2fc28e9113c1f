package node

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/fsm"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/raftnode"
	"github.com/leasehold/leasehold/server"
)

// Node implements server.Backend on a raftnode.Node.
type Node struct {
	r     *raftnode.Node
	write func(ctx context.Context, cmds []lease.Command) ([]lease.Result, error)
	depth func() int
}

var _ server.Backend = (*Node)(nil)

// New wraps r. Writes go straight to Raft, one entry per call, until an
// admission queue is attached.
func New(r *raftnode.Node) *Node {
	n := &Node{r: r, depth: func() int { return 0 }}
	n.write = n.writeDirect
	return n
}

// Raft returns the replica.
func (n *Node) Raft() *raftnode.Node { return n.r }

// Write implements server.Backend.
func (n *Node) Write(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	return n.write(ctx, cmds)
}

// Read implements server.Backend.
func (n *Node) Read(ctx context.Context, stale bool, fn func(m *fsm.Machine, at time.Duration)) (server.ReadMeta, error) {
	if stale {
		idx, at, lag := n.r.ReadStale(fn)
		return server.ReadMeta{AppliedIndex: idx, Now: at, Lag: lag}, nil
	}
	idx, at, err := n.r.ReadConsistent(ctx, fn)
	if err != nil {
		return server.ReadMeta{}, err
	}
	return server.ReadMeta{AppliedIndex: idx, Now: at}, nil
}

// Limits returns the duration limits in force.
func (n *Node) Limits() lease.Limits { return n.r.Limits() }

// Status implements server.Backend.
func (n *Node) Status() server.Status {
	s := n.r.State()
	st := server.Status{
		ID:           n.r.ID(),
		State:        stateName(s.State),
		LeaderID:     s.LeaderID,
		LeaderAddr:   s.LeaderAddr,
		Term:         s.Term,
		CommitIndex:  s.CommitIndex,
		AppliedIndex: s.AppliedIndex,
		LastIndex:    s.LastIndex,
		Now:          s.Now,
		Leases:       s.Leases,
		QueueDepth:   n.depth(),
	}
	dir := make(map[string]int, len(s.Directory))
	for i, m := range s.Directory {
		dir[m.ID] = i
	}
	for _, srv := range s.Servers {
		m := server.Member{ID: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == s.LeaderID}
		if i, ok := dir[m.ID]; ok {
			m.ClientAddr, m.HTTPAddr = s.Directory[i].ClientAddr, s.Directory[i].HTTPAddr
		}
		st.Members = append(st.Members, m)
	}
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}
