package replica

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// stateMachine adapts fsm.Machine to hashicorp/raft's FSM and BatchingFSM.
// Entries are decoded outside the lock; a batch of log entries is applied
// under one lock acquisition.
type stateMachine struct {
	mu sync.RWMutex
	m  *fsm.Machine

	// applied is the index of the last log the state machine was given:
	// commands and configuration changes (Raft keeps its no-ops and
	// barriers from it), or a restored snapshot's. Reads report it.
	applied atomic.Uint64
	// onEvents, if set, receives the events of each applied batch, in log
	// order, outside the lock. It must not block for long.
	onEvents func([]lease.Event)
	// onSettings, if set, receives the payload of the last settings entry of
	// each applied batch (and of a restored snapshot), outside the lock.
	onSettings func(payload []byte)
	// beforeApply, if set, runs on Raft's apply goroutine before each batch
	// is applied; tests use it to hold committed entries back.
	beforeApply atomic.Pointer[func()]
	// onRestore, if set, receives the applied index after a snapshot was
	// installed (the events before it will never be published), outside
	// the lock.
	onRestore func(index uint64)

	// pending maps the tag of each entry this node proposed and has not
	// seen applied or failed to its proposal, so ApplyBatch can complete
	// it directly (see Proposal.tag).
	pendingMu sync.Mutex
	pending   map[*byte]*Proposal

	// nextExpiry is the state's earliest lease expiry (replicated ns;
	// math.MaxInt64 when none), updated on every apply. tickKnows is the
	// earliest expiry the leader's tick planned its sleep with
	// (math.MinInt64 when it is not waiting for one, on a follower): an
	// apply that brings an earlier expiry wakes it through expiryWake.
	nextExpiry atomic.Int64
	tickKnows  atomic.Int64
	expiryWake chan struct{}
}

var (
	_ raft.FSM         = (*stateMachine)(nil)
	_ raft.BatchingFSM = (*stateMachine)(nil)
)

func newStateMachine() *stateMachine {
	s := &stateMachine{m: fsm.New(), pending: make(map[*byte]*Proposal), expiryWake: make(chan struct{}, 1)}
	s.nextExpiry.Store(math.MaxInt64)
	s.tickKnows.Store(math.MinInt64)
	return s
}

// noteExpiry records m's next expiry (under s.mu) and wakes the tick if it
// is earlier than the one the tick planned with.
func (s *stateMachine) noteExpiry() {
	e := int64(math.MaxInt64)
	if t, ok := s.m.NextExpiry(); ok {
		e = int64(t)
	}
	s.nextExpiry.Store(e)
	if e < s.tickKnows.Load() {
		s.wakeTick()
	}
}

func (s *stateMachine) wakeTick() {
	select {
	case s.expiryWake <- struct{}{}:
	default:
	}
}

func (s *stateMachine) addPending(p *Proposal) {
	s.pendingMu.Lock()
	s.pending[&p.tag[0]] = p
	s.pendingMu.Unlock()
}

func (s *stateMachine) removePending(p *Proposal) {
	s.pendingMu.Lock()
	delete(s.pending, &p.tag[0])
	s.pendingMu.Unlock()
}

// takeProposals returns the proposals among logs, by log position, removing
// them from pending; nil when there are none.
func (s *stateMachine) takeProposals(logs []*raft.Log) []*Proposal {
	var props []*Proposal
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	for i, l := range logs {
		if len(l.Extensions) != 1 {
			continue
		}
		k := &l.Extensions[0]
		if p, ok := s.pending[k]; ok {
			delete(s.pending, k)
			if props == nil {
				props = make([]*Proposal, len(logs))
			}
			props[i] = p
		}
	}
	return props
}

// applyResult is what a command log's future carries: results, or an error
// when the entry could not be decoded (every replica fails alike).
type applyResult struct {
	results []lease.Result
	err     error
}

func (s *stateMachine) Apply(l *raft.Log) any {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

func (s *stateMachine) ApplyBatch(logs []*raft.Log) []any {
	if hook := s.beforeApply.Load(); hook != nil {
		(*hook)()
	}
	out := make([]any, len(logs))
	entries := make([]logentry.Entry, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		e, err := logentry.Decode(l.Data)
		if err != nil {
			out[i] = applyResult{err: fmt.Errorf("raft index %d: %w", l.Index, err)}
			continue
		}
		entries[i] = e
	}
	var settingsPayload []byte
	s.mu.Lock()
	settingsVersion := s.m.SettingsVersion()
	for i, l := range logs {
		if l.Type != raft.LogCommand || out[i] != nil {
			continue
		}
		out[i] = applyResult{results: s.m.Apply(l.Index, &entries[i])}
	}
	// Only accepted settings entries count (a stale change is refused).
	if s.m.SettingsVersion() != settingsVersion {
		settingsPayload = s.m.Settings()
	}
	var events []lease.Event
	if s.onEvents != nil {
		events = s.m.TakeEvents()
	}
	s.noteExpiry()
	// Stored under the write lock, so a read labels exactly the state it
	// saw (readIndexed): stored after unlocking, a read could see this
	// batch's state under the previous index.
	if len(logs) > 0 {
		s.applied.Store(logs[len(logs)-1].Index)
	}
	s.mu.Unlock()
	if len(events) > 0 {
		s.onEvents(events)
	}
	if settingsPayload != nil && s.onSettings != nil {
		s.onSettings(settingsPayload)
	}
	// Last, once the batch is applied and its effects published: answer
	// this node's own proposals now rather than through their futures
	// (Raft answers those only after this returns, and each answer then
	// costs goroutine wake-ups before a caller hears of it).
	for i, p := range s.takeProposals(logs) {
		if p != nil {
			p.completeApplied(out[i])
		}
	}
	return out
}

// Snapshot encodes the state under the read lock, so applies wait only for
// the encoding (about a second per million leases), not for the disk.
func (s *stateMachine) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	data := s.m.AppendSnapshot(nil)
	s.mu.RUnlock()
	return snapshotData(data), nil
}

func (s *stateMachine) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.m.Restore(data); err != nil {
		s.mu.Unlock()
		return err
	}
	index := s.m.Index()
	s.applied.Store(index)
	s.noteExpiry()
	payload := s.m.Settings()
	onRestore := s.onRestore
	s.mu.Unlock()
	if payload != nil && s.onSettings != nil {
		s.onSettings(payload)
	}
	if onRestore != nil {
		onRestore(index)
	}
	return nil
}

// OnRestore registers a callback for every snapshot installed after it (a
// lagging follower catching up, or a restore): the state jumped to index
// without the events in between. Register before serving.
func (n *Node) OnRestore(fn func(index uint64)) {
	n.sm.mu.Lock()
	n.sm.onRestore = fn
	n.sm.mu.Unlock()
}

// AppliedIndex is the index of the last entry (or snapshot) applied.
func (n *Node) AppliedIndex() uint64 { return n.sm.applied.Load() }

// read runs fn under the read lock.
func (s *stateMachine) read(fn func(m *fsm.Machine)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.m)
}

// readIndexed runs fn on the state under the read lock and returns the
// applied index of exactly that state.
func (s *stateMachine) readIndexed(fn func(m *fsm.Machine)) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.m)
	return s.applied.Load()
}

type snapshotData []byte

func (d snapshotData) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(d); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshotData) Release() {}
