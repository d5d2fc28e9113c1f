package grpcserver

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// Backend is what the gRPC service needs from a Leasehold node. The real one
// is *node.Node (the Raft replica behind the admission queue); tests use
// fakes such as servertest's.
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
	// the commit index the leader last sent it. A replica that has not heard
	// from a leader for longer than an election timeout refuses stale reads
	// (CodeUnavailable) instead.
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

// Limiter is implemented by backends whose duration limits are cluster
// settings that can change at run time. The server validates requests
// against Limits() before they reach the backend; a backend without it is
// checked against lease.DefaultLimits (the state machine checks again, so a
// stale limit can only reject early, never admit a bad op).
type Limiter interface {
	Limits() lease.Limits
}

// WatchFilter selects the events a watcher sees. Empty fields match
// everything; Group is only set with Namespace, Name only with Group.
type WatchFilter struct {
	Namespace string
	Group     string
	Name      string
	// Extends asks for extends of a tenure (lease.EventExtended) too. They
	// are most of the applied ops, so they are recorded only while a
	// watcher asks for them: a watch with Extends that resumes from before
	// the server recorded them ends compacted.
	Extends bool
}

// Match reports whether the filter selects key k.
func (f WatchFilter) Match(k lease.Key) bool {
	return (f.Namespace == "" || f.Namespace == k.Namespace) &&
		(f.Group == "" || f.Group == k.Group) &&
		(f.Name == "" || f.Name == k.Name)
}

// Watcher is implemented by backends that can stream lease events. The
// server answers Watch with Unimplemented when the backend lacks it.
type Watcher interface {
	// Watch registers a watcher for the events of log entries at index >=
	// from (0: from the next applied entry on) whose key matches f, then
	// calls send, from the caller's goroutine, until ctx is done (it
	// returns ctx.Err()), send returns an error (it returns that error) or
	// the watch fails. Every call carries index: every matching event of
	// entries up to and including index has been passed to send (a batch
	// never splits an entry's events), so a watcher that resumes at the last
	// index + 1 misses nothing. Right after registering it calls send once
	// with no events and the index the watch starts after (from - 1, or the
	// index the backend was current to); later calls may also carry no
	// events, only progress. A from older than the backend still holds, a
	// watcher that fell behind the backend's history, and every watcher of
	// a backend that installed a snapshot, end with a *lease.Error of
	// CodeCompacted whose Index is the oldest index it can resume from.
	Watch(ctx context.Context, from uint64, f WatchFilter, send func(index uint64, batch []lease.Event) error) error
}
