package server

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/fsm"
	"github.com/leasehold/leasehold/lease"
)

// Backend is what the gRPC service needs from a Leasehold node. The real one
// is *raftnode.Node; tests use fakes.
type Backend interface {
	// Write submits lease commands and waits until they are applied. The
	// backend fills in each command's Deadline (replicated time) from ctx's
	// deadline, capped by the per-op default. It returns one result per
	// command, in order, or an error that applies to all of them: a
	// *lease.Error with CodeNotLeader (with the leader hint), CodeOverloaded,
	// CodeDeadlineExceeded (not applied), CodeUnavailable, CodeUnknown
	// (proposed, outcome unknown) or CodeCanceled.
	Write(ctx context.Context, cmds []lease.Command) ([]lease.Result, error)

	// Read runs fn against the state machine under its lock. Unless stale, it
	// is linearizable: only the leader serves it, after confirming it still
	// leads (else a CodeNotLeader error). at is the replicated time to
	// evaluate leases at (the leader's clock, or the replica's applied time
	// when stale). fn must not keep m.
	Read(ctx context.Context, stale bool, fn func(m *fsm.Machine, at time.Duration)) (ReadMeta, error)

	// Status reports this node's view of the cluster.
	Status() Status
}

// ReadMeta describes the state a read saw.
type ReadMeta struct {
	AppliedIndex uint64
	// Now is the replicated time the read was evaluated at.
	Now time.Duration
	// Lag is how far (in log entries) this replica's applied index was behind
	// the last index it knows of; 0 on the leader.
	Lag uint64
}

// Status is one node's view of the cluster.
type Status struct {
	ID           string
	State        string // "leader", "follower", "candidate", "shutdown"
	LeaderID     string
	LeaderAddr   string // the leader's client (gRPC) address, when known
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	Now          time.Duration // replicated time of the last applied entry
	Leases       int
	QueueDepth   int
	Members      []Member
}

// Member is one server of the cluster.
type Member struct {
	ID         string
	RaftAddr   string
	ClientAddr string // empty until the member has registered
	HTTPAddr   string
	Voter      bool
	Leader     bool
}
