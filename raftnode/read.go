package raftnode

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/fsm"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/logentry"
)

// ReadConsistent runs fn linearizably: only on a ready leader, after Raft
// confirms with a quorum that it still leads. Every write acknowledged
// before the read began was applied to this leader's state machine before it
// was acknowledged (or before the barrier that readied this term), so fn sees
// it. at is the leader's clock reading, at which leases are evaluated.
func (n *Node) ReadConsistent(ctx context.Context, fn func(m *fsm.Machine, at time.Duration)) (index uint64, at time.Duration, err error) {
	if _, _, ok := n.clock.now(); !ok {
		return 0, 0, n.NotLeaderError()
	}
	errc, ok := n.track(n.raft.VerifyLeader)
	if !ok {
		return 0, 0, errShuttingDown()
	}
	select {
	case err := <-errc:
		if err != nil {
			return 0, 0, n.NotLeaderError()
		}
	case <-ctx.Done():
		return 0, 0, contextError(ctx.Err())
	}
	at, _, ok = n.clock.now()
	if !ok {
		return 0, 0, n.NotLeaderError()
	}
	n.sm.read(func(m *fsm.Machine) {
		index = n.sm.applied.Load()
		// Never evaluate behind the applied state: a clock that stepped
		// back (against the Clock contract) would otherwise show leases
		// acknowledged at a later replicated time as absent.
		at = max(at, m.Now())
		fn(m, at)
	})
	return index, at, nil
}

// ReadStale runs fn on this replica's state as applied so far. lag is how
// many entries this replica knows of but has not applied.
func (n *Node) ReadStale(fn func(m *fsm.Machine, at time.Duration)) (index uint64, at time.Duration, lag uint64) {
	last := n.raft.LastIndex()
	n.sm.read(func(m *fsm.Machine) {
		index = n.sm.applied.Load()
		at = m.Now()
		fn(m, at)
	})
	if last > index {
		lag = last - index
	}
	return index, at, lag
}

// contextError maps a context error to the taxonomy.
func contextError(err error) error {
	if err == context.DeadlineExceeded {
		return &lease.Error{Code: lease.CodeDeadlineExceeded, Message: "deadline exceeded before the read was served", Cause: err}
	}
	return &lease.Error{Code: lease.CodeCanceled, Cause: err}
}

// State is Raft's view of this node.
type State struct {
	State        raft.RaftState
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	LeaderID     string
	LeaderAddr   string // client address from the member directory
	Now          time.Duration
	Leases       int
	Servers      []raft.Server
	Directory    []logentry.Member
}

// State reports this node's Raft state, configuration and member directory.
func (n *Node) State() State {
	s := State{
		State:        n.raft.State(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.sm.applied.Load(),
		LastIndex:    n.raft.LastIndex(),
	}
	s.LeaderID, s.LeaderAddr = n.LeaderHint()
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		s.Servers = f.Configuration().Servers
	}
	n.sm.read(func(m *fsm.Machine) {
		s.Now, s.Leases, s.Directory = m.Now(), m.Len(), m.Members()
	})
	if t, ok := n.Now(); ok {
		s.Now = t
	}
	return s
}

// OnEvents registers a callback for the events of every applied batch, in
// log order. Call before the node applies anything (right after Open, before
// serving); it must not block for long.
func (n *Node) OnEvents(fn func([]lease.Event)) {
	n.sm.mu.Lock()
	n.sm.onEvents = fn
	n.sm.m.RecordEvents(fn != nil)
	n.sm.mu.Unlock()
}

// Limits returns the duration limits the state machine enforces.
func (n *Node) Limits() lease.Limits {
	var l lease.Limits
	n.sm.read(func(m *fsm.Machine) { l = m.Limits() })
	return l
}

// WaitLeader blocks until some node is leader (and, if self, ready), or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			if string(id) != n.cfg.ID {
				return nil
			}
			if _, ok := n.Now(); ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
