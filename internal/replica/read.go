package replica

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// ReadConsistent runs fn linearizably, on a ready leader. Its read index is
// the last entry proposed when the read begins, not the last one applied:
// the read waits until that entry has applied here and Raft has confirmed
// with a quorum that this node still leads, and only then runs fn. So an
// entry stamped before the read began (an extend stamped before a lease's
// expiry, say) is in the state fn sees, and every write acknowledged before
// the read began was applied here before it was acknowledged (or before the
// barrier that readied this term).
//
// at, the replicated time leases are evaluated at, is the applied state's
// own time (the stamp of the last applied entry), not a fresh reading of
// the leader's clock: every later entry is stamped at or after it, in this
// term and in any later leader's (whose clock starts from the applied time).
// A fresh reading runs up to a tick ahead of the log, and a lease the read
// called expired at such a time could still be extended, by a later
// leader's entry stamped before it, without ever having lapsed.
func (n *Node) ReadConsistent(ctx context.Context, fn func(m *fsm.Machine, at time.Duration)) (index uint64, at time.Duration, err error) {
	n.proposeMu.Lock()
	_, term, ok := n.clock.now()
	last := n.lastProposed
	n.proposeMu.Unlock()
	if !ok {
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
		return 0, 0, lease.ContextError(ctx.Err(), false)
	}
	// An entry proposed in an earlier term has applied, or never will,
	// once this term's barrier has completed (the clock is ready).
	if last != nil && last.term == term {
		n.waitingReads.Add(1)
		var closing bool
		select {
		case <-last.done:
		case <-ctx.Done():
		case <-n.ctx.Done(): // hashicorp/raft leaves futures unanswered at shutdown
			closing = true
		}
		n.waitingReads.Add(-1)
		if ctx.Err() != nil {
			return 0, 0, lease.ContextError(ctx.Err(), false)
		}
		if closing {
			return 0, 0, errShuttingDown()
		}
		if !last.applied {
			// Not appended (Raft did not take it in time, or this node
			// stopped leading) or lost with leadership: the read cannot be
			// ordered after it.
			if lease.CodeOf(last.err) == lease.CodeOverloaded {
				return 0, 0, last.err
			}
			return 0, 0, n.NotLeaderError()
		}
	}
	deposed := false
	applied := n.sm.readIndexed(func(m *fsm.Machine) {
		// The read index was taken in this term: still leading in it, no
		// other leader's entry can have been proposed in the meantime.
		if _, cur, ok := n.clock.now(); !ok || cur != term {
			deposed = true
			return
		}
		at = m.Now()
		fn(m, at)
	})
	if deposed {
		return 0, 0, n.NotLeaderError()
	}
	return applied, at, nil
}

// ReadStale runs fn on this replica's state as applied so far. lag is how
// many entries this replica has heard are committed (the commit index the
// leader last sent it) but has not applied. It says nothing of what a
// replica cut off from the leader has not heard: check LeaderContact.
func (n *Node) ReadStale(fn func(m *fsm.Machine, at time.Duration)) (index uint64, at time.Duration, lag uint64) {
	commit := n.raft.CommitIndex()
	index = n.sm.readIndexed(func(m *fsm.Machine) {
		at = m.Now()
		fn(m, at)
	})
	if commit > index {
		lag = commit - index
	}
	return index, at, lag
}

// LeaderContact reports how long ago this replica last heard from a leader
// (0 on the leader itself). ok is false when that was longer ago than an
// election timeout, or never: the replica is cut off, or the cluster has no
// leader, and its state may be behind by any number of entries.
func (n *Node) LeaderContact() (age time.Duration, ok bool) {
	if _, leader := n.leadingTerm(); leader {
		// A leader that loses its quorum steps down within the leader
		// lease timeout, which is at most an election timeout.
		return 0, true
	}
	last := n.raft.LastContact()
	if last.IsZero() {
		return 0, false
	}
	age = time.Since(last)
	return age, age <= n.cfg.ElectionTimeout
}

// StaleReadError is the error a stale read on this replica gets, or nil: a
// replica that has not heard from a leader for longer than an election
// timeout says so rather than answer as if it were current.
func (n *Node) StaleReadError() error {
	age, ok := n.LeaderContact()
	if ok {
		return nil
	}
	msg := fmt.Sprintf("server %s has not heard from a leader", n.cfg.ID)
	if age > 0 {
		msg += fmt.Sprintf(" for %v (election timeout %v)", age.Round(time.Millisecond), n.cfg.ElectionTimeout)
	}
	return lease.Errorf(lease.CodeUnavailable, "%s: its state may be behind by any amount; read from another server", msg)
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

// SetRecording says which events the state machine records for OnEvents:
// none, or every kind (with or without extends of a tenure). It returns the
// index applied when the change took effect: the events of every later
// entry follow it. Recording decides nothing about apply results.
func (n *Node) SetRecording(events, extends bool) (applied uint64) {
	n.sm.mu.Lock()
	defer n.sm.mu.Unlock()
	n.sm.m.RecordEvents(events)
	n.sm.m.RecordExtends(extends)
	return n.sm.m.Index()
}

// Recording says whether the state machine records events (for OnEvents),
// and extends of a tenure among them.
func (n *Node) Recording() (events, extends bool) {
	n.sm.read(func(m *fsm.Machine) { events, extends = m.Recording() })
	return events, extends
}

// EventCounts are the events of each kind this node has applied since it
// started, recorded or not.
func (n *Node) EventCounts() (c fsm.EventCounts) {
	n.sm.read(func(m *fsm.Machine) { c = m.EventCounts() })
	return c
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
