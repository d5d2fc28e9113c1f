package backend

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// Mode chooses the write path.
type Mode uint8

const (
	// Admitted sends writes through the admission queue: many ops per entry,
	// back pressure, deadlines, renewals first. The production mode.
	Admitted Mode = iota
	// Naive proposes every op as its own log entry with no admission
	// control, as Juju 2.9 did. It exists as the benchmark's baseline.
	Naive
)

// Options configure a Node.
type Options struct {
	Mode      Mode
	Admission admission.Settings // zero: admission.DefaultSettings()
	Hooks     admission.Hooks
	// WatchHistory and WatchBuffer size the watch hub (see server.NewWatchHub).
	WatchHistory, WatchBuffer int
	// KeepWindow records every event but extends of a tenure even with no
	// watcher, for the watch hub's window: a server's status page shows a
	// lease's recent history from it, and a watch that resumes after its
	// stream broke finds its events there. Without it, events are recorded
	// only while a watcher reads them.
	KeepWindow bool
	// Logger receives the node's warnings (nil: discarded).
	Logger *slog.Logger
}

// Node implements server.Backend and server.Watcher on a raftnode.Node.
type Node struct {
	r     *replica.Node
	queue *admission.Queue
	mode  Mode
	log   *slog.Logger
	*grpcserver.WatchHub
	// renew is the renew_fraction setting (float64 bits; 0 until a
	// settings entry is applied: the server's default).
	renew atomic.Uint64
}

var (
	_ grpcserver.Backend         = (*Node)(nil)
	_ grpcserver.Watcher         = (*Node)(nil)
	_ grpcserver.Limiter         = (*Node)(nil)
	_ grpcserver.RenewFractioner = (*Node)(nil)
)

// New wraps r, which must not have applied anything yet (so the watch hub
// sees every event).
func New(r *replica.Node, opts Options) (*Node, error) {
	if opts.Admission == (admission.Settings{}) {
		opts.Admission = admission.DefaultSettings()
	}
	q, err := admission.New(proposer{r}, opts.Admission, admission.WithHooks(opts.Hooks))
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{r: r, queue: q, mode: opts.Mode, log: opts.Logger, WatchHub: grpcserver.NewWatchHub(opts.WatchHistory, opts.WatchBuffer)}
	r.OnEvents(n.WatchHub.Publish)
	// The state machine records events only while a watcher reads them
	// (or KeepWindow), and extends of a tenure only while a watcher asks
	// (it counts every event for the metrics either way).
	n.WatchHub.SetRecorder(func(events, extends bool) (uint64, bool) {
		on := events || opts.KeepWindow
		return r.SetRecording(on, on && extends), on
	})
	r.OnSettings(n.applySettings)
	r.OnLeaderReady(n.writeInitialSettings)
	// A server restarted from a snapshot holds no events before it: a
	// watch resuming from there must be told (compacted), as must the
	// watchers of a server that installs a snapshot later.
	n.WatchHub.Reset(r.AppliedIndex())
	r.OnRestore(n.WatchHub.Reset)
	return n, nil
}

// Close stops the admission queue: queued calls are answered Unavailable.
// The raft node is closed by its owner.
func (n *Node) Close() { n.queue.Close() }

// Raft returns the replica.
func (n *Node) Raft() *replica.Node { return n.r }

// Queue returns the admission queue.
func (n *Node) Queue() *admission.Queue { return n.queue }

// Write implements server.Backend.
func (n *Node) Write(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	// A follower answers at once with the hint, without queueing.
	if _, ok := n.r.Now(); !ok {
		return nil, n.r.NotLeaderError()
	}
	var res []lease.Result
	var err error
	if n.mode == Naive {
		res, err = n.writeNaive(ctx, cmds)
	} else {
		res, err = n.queue.Submit(ctx, cmds)
	}
	// The queue cannot know the leader; add the hint here.
	if err != nil { // (le escapes through errors.As: not on the success path)
		var le *lease.Error
		if errors.As(err, &le) && le.Code == lease.CodeNotLeader && le.LeaderID == "" {
			err = n.r.NotLeaderError()
		}
	}
	for i := range res { // a call split across entries can fail in part
		if res[i].Code == lease.CodeNotLeader && res[i].LeaderID == "" {
			res[i].LeaderID, res[i].LeaderAddr = n.r.LeaderHint()
		}
	}
	return res, err
}

// Read implements server.Backend.
func (n *Node) Read(ctx context.Context, stale bool, fn func(m *fsm.Machine, at time.Duration)) (grpcserver.ReadMeta, error) {
	if stale {
		if err := n.r.StaleReadError(); err != nil {
			return grpcserver.ReadMeta{}, err
		}
		idx, at, lag := n.r.ReadStale(fn)
		return grpcserver.ReadMeta{AppliedIndex: idx, Now: at, Lag: lag}, nil
	}
	idx, at, err := n.r.ReadConsistent(ctx, fn)
	if err != nil {
		return grpcserver.ReadMeta{}, err
	}
	return grpcserver.ReadMeta{AppliedIndex: idx, Now: at}, nil
}

// RenewFraction implements server.RenewFractioner.
func (n *Node) RenewFraction() float64 { return math.Float64frombits(n.renew.Load()) }

// Limits implements server.Limiter.
func (n *Node) Limits() lease.Limits { return n.r.Limits() }

// Status implements server.Backend.
func (n *Node) Status() grpcserver.Status {
	s := n.r.State()
	st := grpcserver.Status{
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
		QueueDepth:   n.queue.Stats().Queued(),
	}
	dir := make(map[string]int, len(s.Directory))
	for i, m := range s.Directory {
		dir[m.ID] = i
	}
	for _, srv := range s.Servers {
		m := grpcserver.Member{ID: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == s.LeaderID}
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

// proposer adapts raftnode.Node to admission.Proposer.
type proposer struct{ r *replica.Node }

func (p proposer) Propose(cmds []lease.Command) (admission.Future, error) {
	f, err := p.r.Propose(cmds)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (p proposer) Now() (time.Duration, bool) { return p.r.Now() }
