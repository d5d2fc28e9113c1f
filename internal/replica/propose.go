package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// enqueueTimeout bounds how long Propose may wait for Raft to accept an
// entry. The admission queue keeps few entries in flight, so hitting it means
// Raft itself is stuck; the op was not appended and the caller is told to
// back off.
const enqueueTimeout = 2 * time.Second

// Proposal is an entry appended to the Raft log, awaiting its application.
type Proposal struct {
	done    chan struct{}
	results []lease.Result
	err     error
	// applied is set (before done closes) when Raft applied the entry on
	// this node, whatever the state machine made of it.
	applied bool
	// term is the leader term whose clock stamped the entry.
	term uint64
	// tag is the entry's raft.Log.Extensions. hashicorp/raft's leader hands
	// the state machine the very Log it was given, so the address of tag's
	// byte identifies this entry when it applies here (stateMachine.pending);
	// copies read from a log store or sent by another leader never match.
	// It is an allocation of its own: Raft's log cache keeps the Log, tag
	// included, long after the proposal is done, and a tag inside the
	// proposal would keep the proposal and its results (and, through the
	// callback, the callers' requests) alive with it.
	tag []byte

	mu        sync.Mutex // guards completed and notify
	completed bool
	notify    Notifiee
}

// Notifiee is told when a proposal is done (an interface rather than a
// func, so a caller's per-entry state needs no closure allocation). It is
// an alias of the unnamed type so that packages need not import raftnode
// to match Notify's signature (admission does not).
type Notifiee = interface{ Resolved() }

// The admission queue's notifier interface (admission/queue.go), matched
// structurally: should the two drift, the queue silently falls back to a
// goroutine per entry, so keep them in step.
var _ interface {
	Notify(fn interface{ Resolved() }) bool
} = (*Proposal)(nil)

// Done is closed when the entry has been applied on this node, or failed.
func (p *Proposal) Done() <-chan struct{} { return p.done }

// Result returns one result per command, or an error for the whole entry: a
// *lease.Error with CodeNotLeader (not appended), CodeOverloaded (Raft did
// not accept it in time, not appended) or CodeUnknown (appended, then
// leadership was lost: it may or may not be applied). Call after Done.
func (p *Proposal) Result() ([]lease.Result, error) { return p.results, p.err }

// Notify arranges for fn.Resolved to run once p is done, on the goroutine
// that completes it: Raft's apply goroutine when the entry applied, so
// callers are answered without a goroutine hand-off. It must not block.
// Notify returns false, and does not keep fn, when p is already done.
func (p *Proposal) Notify(fn Notifiee) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.completed {
		return false
	}
	p.notify = fn
	return true
}

// complete records the outcome and closes done, once: the state machine
// completes an applied entry, the future's waiter one that failed (and,
// as a fallback, one the state machine did not recognise).
func (p *Proposal) complete(results []lease.Result, err error, applied bool) {
	p.mu.Lock()
	if p.completed {
		p.mu.Unlock()
		return
	}
	p.completed = true
	p.results, p.err, p.applied = results, err, applied
	fn := p.notify
	p.notify = nil // the proposal outlives its callers (lastProposed)
	p.mu.Unlock()
	close(p.done)
	if fn != nil {
		fn.Resolved()
	}
}

// completeApplied completes p with the state machine's response.
func (p *Proposal) completeApplied(resp any) {
	r, ok := resp.(applyResult)
	switch {
	case !ok:
		p.complete(nil, lease.Errorf(lease.CodeUnknown, "unexpected apply response %T", resp), true)
	case r.err != nil:
		p.complete(nil, &lease.Error{Code: lease.CodeUnknown, Message: "entry rejected by the state machine", Cause: r.err}, true)
	default:
		p.complete(r.results, nil, true)
	}
}

func (p *Proposal) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func failedProposal(err error) *Proposal {
	p := &Proposal{done: make(chan struct{}), err: err, completed: true}
	close(p.done)
	return p
}

// Now reads the leader's replicated clock; ok is false unless this node is
// the leader and has finished establishing its term.
func (n *Node) Now() (time.Duration, bool) {
	t, _, ok := n.clock.now()
	return t, ok
}

// Propose stamps one entry holding cmds with the leader's clock and appends
// it to the log. Deadlines in cmds are in replicated time.
func (n *Node) Propose(cmds []lease.Command) (*Proposal, error) {
	p := n.proposeEntry(&logentry.Entry{Kind: logentry.KindBatch, Commands: cmds})
	select {
	case <-p.done:
		if p.err != nil && p.results == nil && lease.CodeOf(p.err) != lease.CodeUnknown {
			return nil, p.err
		}
	default:
	}
	return p, nil
}

// ProposeSettings appends a settings change based on settings version
// basedOn; the state machine refuses it (CodeInvalidArgument, field
// "settings_version") when the settings changed since.
func (n *Node) ProposeSettings(ctx context.Context, basedOn uint64, payload []byte) error {
	p := n.proposeEntry(&logentry.Entry{Kind: logentry.KindSettingsChange, SettingsVersion: basedOn, Payload: payload})
	if err := p.wait(ctx); err != nil {
		return err
	}
	if len(p.results) != 1 {
		return lease.Errorf(lease.CodeUnknown, "settings change: %d results", len(p.results))
	}
	return p.results[0].Err()
}

func (n *Node) proposeEntry(e *logentry.Entry) *Proposal {
	n.proposeMu.Lock()
	t, term, ok := n.clock.now()
	if !ok {
		n.proposeMu.Unlock()
		return failedProposal(n.NotLeaderError())
	}
	if !n.startFuture() {
		n.proposeMu.Unlock()
		return failedProposal(errShuttingDown())
	}
	e.Time = t
	p := &Proposal{done: make(chan struct{}), term: term, tag: []byte{proposalTag}}
	n.sm.addPending(p)
	f := n.raft.ApplyLog(raft.Log{Data: e.Marshal(), Extensions: p.tag}, enqueueTimeout)
	n.lastProposal.Store(int64(n.cfg.Clock.Now().Sub(n.clockEpoch)))
	n.lastProposed = p
	n.proposeMu.Unlock()

	// On the leader the state machine completes p as it applies the entry;
	// this goroutine completes it when Raft fails it instead (not appended,
	// leadership lost), and is off the path of a successful write.
	go func() {
		defer n.futures.Done()
		err := f.Error()
		n.sm.removePending(p)
		if err != nil {
			p.complete(nil, n.mapApplyError(err), false)
			return
		}
		p.completeApplied(f.Response())
	}()
	return p
}

// proposalTag is the one byte of a proposed entry's Extensions; only its
// address matters (see Proposal.tag).
const proposalTag = 'p'

// mapApplyError classifies a Raft apply error: whether the entry may have
// been appended decides between a certain failure and an unknown outcome.
func (n *Node) mapApplyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return n.NotLeaderError()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return &lease.Error{Code: lease.CodeOverloaded, Message: "raft did not accept the entry in time", RetryAfter: 100 * time.Millisecond}
	case errors.Is(err, raft.ErrLeadershipLost):
		return &lease.Error{Code: lease.CodeUnknown, Message: "leadership lost after proposing; the operation may or may not have been applied", Cause: err}
	default:
		return &lease.Error{Code: lease.CodeUnknown, Message: "raft apply failed", Cause: err}
	}
}

// notReadyRetry is the retry-after a leader that cannot serve yet gives:
// readying a term takes one commit, and a transfer hands leadership over
// within an election timeout; clients back off further on their own.
const notReadyRetry = 100 * time.Millisecond

// NotLeaderError builds CodeNotLeader with the best hint this node has. A
// leader that cannot serve yet (establishing its term, or handing leadership
// over) knows no other leader: it answers NotLeader without a hint and with
// a retry-after, so clients back off instead of taking a healthy server for
// an unreachable one.
//
// A closing node with no other leader to point at says it is shutting down.
func (n *Node) NotLeaderError() error {
	id, addr := n.LeaderHint()
	switch {
	case id != "" && id != n.cfg.ID:
		return &lease.Error{Code: lease.CodeNotLeader, LeaderID: id, LeaderAddr: addr}
	case n.closed.Load():
		return errShuttingDown()
	case id == n.cfg.ID:
		return &lease.Error{Code: lease.CodeNotLeader, RetryAfter: notReadyRetry,
			Message: fmt.Sprintf("server %s cannot serve as leader yet (establishing its term or handing leadership over); retry shortly", id)}
	}
	return &lease.Error{Code: lease.CodeNotLeader}
}

// LeaderHint returns the current leader's ID and client address (from the
// member directory; empty when unknown).
func (n *Node) LeaderHint() (id, clientAddr string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	id = string(lid)
	n.sm.read(func(m *fsm.Machine) {
		if mem, ok := m.Member(id); ok {
			clientAddr = mem.ClientAddr
		}
	})
	return id, clientAddr
}
