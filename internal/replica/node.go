package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/internal/replica/boltstore"
	"github.com/leasehold/leasehold/internal/replica/walstore"
	"github.com/leasehold/leasehold/lease"
)

// logCacheEntries is how many recent log entries stay in memory for
// replication. Entries hold up to MaxOpsPerEntry commands each (about 45 KB
// full), so 512 held about 23 MB per replica under bulk load; a follower
// that keeps up trails by at most a few MaxAppendEntries batches, and one
// that does not is served from the log store.
const logCacheEntries = 128

// Node is one running Raft replica of the lease state.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	sm    *stateMachine
	trans raft.Transport
	store *boltstore.Store // stable store, and the log store of bolt data directories
	wal   *walstore.Store  // the log store when the data directory uses walstore
	clock leaderClock
	// leadershipMu is held by watchLeadership while it handles a change;
	// tests hold it to model a watcher that has not run yet.
	leadershipMu sync.Mutex

	tickNanos  atomic.Int64 // live tick interval (settings.go)
	settingsFn atomic.Pointer[func(payload []byte)]
	// leaderReadyFn, if set, runs when this node becomes a ready leader.
	leaderReadyFn atomic.Pointer[func(ctx context.Context)]

	// proposeMu orders clock readings with appends, so entry stamps increase
	// in log order.
	proposeMu sync.Mutex
	// lastProposed is the last entry handed to Raft (under proposeMu).
	// Entries apply in log order, so once it has applied every entry
	// proposed before it has too.
	lastProposed *Proposal
	lastProposal atomic.Int64 // monotonic nanoseconds since clockEpoch of the last proposal
	// waitingReads counts linearizable reads waiting for earlier proposals
	// to apply (tests watch it).
	waitingReads atomic.Int64
	clockEpoch   time.Time

	// futures counts Raft futures being waited on; closing refuses new ones.
	futMu   sync.Mutex
	closing bool
	futures sync.WaitGroup

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Open starts a node from cfg.DataDir, bootstrapping a new cluster when
// cfg.Bootstrap is set and the directory is empty. A node restarted on the
// same directory recovers from its snapshot and log.
func Open(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), sm: newStateMachine()}
	n.initSettings()
	n.clock.clock = cfg.Clock
	n.clock.leading = n.leadingTerm
	n.clockEpoch = cfg.Clock.Now()
	if err := n.open(); err != nil {
		n.closeStores()
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(2)
	go n.watchLeadership()
	go n.tick()
	return n, nil
}

func (n *Node) open() error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return err
	}
	out := n.cfg.RaftLogOutput
	if out == nil {
		out = io.Discard
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft-" + n.cfg.ID, Level: hclog.Warn, Output: out})
	logs, snaps, err := n.openStores(hlog)
	if err != nil {
		return err
	}
	tlsLayer, err := n.openTransport(hlog)
	if err != nil {
		return err
	}
	rc := n.raftConfig(hlog)
	if err := n.bootstrapIfNew(rc, logs, snaps); err != nil {
		return err
	}
	r, err := raft.NewRaft(rc, n.sm, logs, n.store, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("raftnode: start raft: %w", err)
	}
	n.raft = r
	if tlsLayer != nil {
		tlsLayer.raft.Store(r) // peers are checked against its configuration
	}
	return nil
}

// openStores opens the stable store (a bbolt file, DataDir/raft.db) and the
// log store (walstore, or the same bbolt file in data directories created
// that way; see openLogStore) behind an in-memory cache of recent entries, and the snapshot store. It refuses a
// directory whose log and stable store were lost (refuseOldWAL,
// refuseLostLog).
func (n *Node) openStores(hlog hclog.Logger) (raft.LogStore, raft.SnapshotStore, error) {
	dir := n.cfg.DataDir
	dbPath := filepath.Join(dir, "raft.db")
	if err := refuseOldWAL(dir, dbPath); err != nil {
		return nil, nil, err
	}
	if err := refuseLostLog(dir, dbPath); err != nil {
		return nil, nil, err
	}
	w, err := boltstore.Open(dbPath)
	if err != nil {
		return nil, nil, fmt.Errorf("raftnode: open log: %w", err)
	}
	n.store = w
	logs, wal, err := openLogStore(n.cfg, w)
	if err != nil {
		return nil, nil, err
	}
	n.wal = wal
	if n.cfg.WrapLogStore != nil {
		logs = n.cfg.WrapLogStore(logs)
	}
	// Followers are fed from recent entries; serve those from memory rather
	// than re-reading and re-decoding them from disk for every replica.
	if logs, err = raft.NewLogCache(logCacheEntries, logs); err != nil {
		return nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		return nil, nil, fmt.Errorf("raftnode: open snapshots: %w", err)
	}
	return logs, snaps, nil
}

// openTransport uses the configured transport, or listens on RaftAddr over
// TCP (mutual TLS when configured: the TLS layer is returned, to be given
// the Raft instance its peers are checked against).
func (n *Node) openTransport(hlog hclog.Logger) (*tlsStreamLayer, error) {
	if n.cfg.Transport != nil {
		n.trans = n.cfg.Transport
		return nil, nil
	}
	// A nil advertise address makes the transport advertise what it bound,
	// which supports port 0 in tests.
	var advertise net.Addr
	if _, port, _ := net.SplitHostPort(n.cfg.RaftAddr); port != "0" {
		a, err := net.ResolveTCPAddr("tcp", n.cfg.RaftAddr)
		if err != nil {
			return nil, fmt.Errorf("raftnode: raft address: %w", err)
		}
		advertise = a
	}
	var t *raft.NetworkTransport
	var tlsLayer *tlsStreamLayer
	var err error
	if n.cfg.TLS != nil {
		t, tlsLayer, err = newTLSTransport(n.cfg.RaftAddr, advertise, n.cfg.TLS, hlog)
	} else {
		t, err = raft.NewTCPTransportWithConfig(n.cfg.RaftAddr, advertise, netTransportConfig(nil, hlog))
	}
	if err != nil {
		return nil, fmt.Errorf("raftnode: raft transport: %w", err)
	}
	n.trans = t
	return tlsLayer, nil
}

// netTransportConfig is the configuration of every TCP transport (plain or
// TLS). MaxRPCsInFlight 1 turns hashicorp/raft's pipelined replication off:
// after a follower answers Success=false the pipeline can deadlock
// (hashicorp/raft#612), leaving that follower without entries for good while
// heartbeats keep it from calling an election, and Raft.Shutdown hanging; the
// fault suite's leader-flap kind hit it. Synchronous replication still
// carries every pending entry in each AppendEntries, and hashicorp/raft's own
// measurements (its #541) found pipelining of little use with batching.
func netTransportConfig(stream raft.StreamLayer, hlog hclog.Logger) *raft.NetworkTransportConfig {
	return &raft.NetworkTransportConfig{Stream: stream, MaxPool: 4, Timeout: 10 * time.Second, Logger: hlog, MaxRPCsInFlight: 1}
}

// raftConfig is hashicorp/raft's configuration for this node.
func (n *Node) raftConfig(hlog hclog.Logger) *raft.Config {
	cfg := n.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.CommitTimeout = cfg.CommitTimeout
	// Let the leader take up to MaxAppendEntries proposals per disk write.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 64
	rc.NoSnapshotRestoreOnStart = false
	return rc
}

// bootstrapIfNew writes the initial configuration when cfg.Bootstrap is set
// and the stores hold no state yet.
func (n *Node) bootstrapIfNew(rc *raft.Config, logs raft.LogStore, snaps raft.SnapshotStore) error {
	if len(n.cfg.Bootstrap) == 0 {
		return nil
	}
	has, err := raft.HasExistingState(logs, n.store, snaps)
	if err != nil || has {
		return err
	}
	if err := raft.BootstrapCluster(rc, logs, n.store, snaps, n.trans, raft.Configuration{Servers: voters(n.cfg.Bootstrap)}); err != nil {
		return fmt.Errorf("raftnode: bootstrap: %w", err)
	}
	n.log.Info("bootstrapped new cluster", "voters", len(n.cfg.Bootstrap))
	return nil
}

func voters(peers []Peer) []raft.Server {
	var servers []raft.Server
	for _, p := range peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	return servers
}

func (n *Node) closeStores() {
	if t, ok := n.trans.(*raft.NetworkTransport); ok && n.cfg.Transport == nil {
		// Close pooled outgoing connections too, so peers' handlers for
		// them return instead of blocking on a read forever.
		t.CloseStreams()
		t.Close()
	}
	if n.wal != nil {
		n.wal.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

// refuseOldWAL fails when dir holds a raft-wal log from an earlier version
// but no raft.db: starting on an empty log and stable store would forget the
// node's term and vote, and a node that can vote twice in a term can help
// elect two leaders.
func refuseOldWAL(dir, dbPath string) error {
	if _, err := os.Stat(dbPath); err == nil {
		return nil
	}
	if nonEmptyDir(filepath.Join(dir, "wal")) {
		return fmt.Errorf("raftnode: %s holds a raft-wal log from an earlier version, which this version cannot read; rebuild this server from an empty data directory (remove it from the cluster, clear the directory, add it back)", dir)
	}
	return nil
}

// refuseLostLog fails when dir holds Raft snapshots but no raft.db: the
// log and stable store were lost, and starting without them would forget
// the node's term and vote just as an old raft-wal directory would.
func refuseLostLog(dir, dbPath string) error {
	if _, err := os.Stat(dbPath); err == nil {
		return nil
	}
	if nonEmptyDir(filepath.Join(dir, "snapshots")) {
		return fmt.Errorf("raftnode: %s holds Raft snapshots but no raft.db (the log, term and vote): it was lost or removed, and a server that forgot its vote can vote twice in a term; rebuild this server from an empty data directory (remove it from the cluster, clear the directory, add it back)", dir)
	}
	return nil
}

func nonEmptyDir(path string) bool {
	entries, err := os.ReadDir(path)
	return err == nil && len(entries) > 0
}

// Close stops the node. A leader first hands leadership to another voter so
// the cluster does not wait out an election timeout.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.futMu.Lock()
	n.closing = true // no new proposals or reads from here on
	n.futMu.Unlock()
	if n.raft.State() == raft.Leader && n.voters() > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before shutdown failed", "err", err)
		}
	}
	n.awaitFutures(closeWait)
	n.cancel()
	err := n.raft.Shutdown().Error()
	n.wg.Wait()
	n.closeStores()
	return err
}

// closeWait bounds how long Close waits for proposals and reads already
// handed to Raft to be answered.
const closeWait = 5 * time.Second

// startFuture registers a Raft future about to be waited on, unless the node
// is closing. hashicorp/raft never answers futures still queued in its
// buffered channels when it shuts down, so Close lets registered ones finish
// first instead of leaving their waiters blocked forever.
func (n *Node) startFuture() bool {
	n.futMu.Lock()
	defer n.futMu.Unlock()
	if n.closing {
		return false
	}
	n.futures.Add(1)
	return true
}

// track issues a Raft request and returns a channel that receives its
// answer, or false when the node is closing. Every waited-on Raft request
// goes through here (or startFuture), so Close can let them finish.
func (n *Node) track(issue func() raft.Future) (<-chan error, bool) {
	if !n.startFuture() {
		return nil, false
	}
	f := issue()
	errc := make(chan error, 1)
	go func() {
		defer n.futures.Done()
		errc <- f.Error()
	}()
	return errc, true
}

func (n *Node) awaitFutures(limit time.Duration) {
	done := make(chan struct{})
	go func() {
		n.futures.Wait()
		close(done)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.log.Warn("raft requests still unanswered at shutdown", "waited", limit)
	}
}

func errShuttingDown() error {
	return lease.Errorf(lease.CodeUnavailable, "server shutting down; not applied")
}

func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// RaftAddr is the address this node's Raft transport listens on.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// Bootstrap bootstraps a new cluster of peers on a running node that holds no
// state yet (used when addresses are only known once every node listens).
func (n *Node) Bootstrap(peers []Peer) error {
	return n.raft.BootstrapCluster(raft.Configuration{Servers: voters(peers)}).Error()
}

// ID is this node's server ID.
func (n *Node) ID() string { return n.cfg.ID }

// Raft exposes the underlying Raft instance for membership and tests.
func (n *Node) Raft() *raft.Raft { return n.raft }

// watchLeadership starts the replicated clock when this node becomes leader
// and stops it when it steps down.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	var cancelEstablish context.CancelFunc = func() {}
	for {
		select {
		case <-n.ctx.Done():
			cancelEstablish()
			return
		case isLeader := <-n.raft.LeaderCh():
			n.leadershipMu.Lock()
			n.leadershipMu.Unlock()
			cancelEstablish()
			gen := n.clock.stop()
			if !isLeader {
				n.log.Info("lost leadership")
				continue
			}
			var ctx context.Context
			ctx, cancelEstablish = context.WithCancel(n.ctx)
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.establish(ctx, gen)
			}()
		}
	}
}

// establish readies the clock for a new term: a barrier applies every
// earlier entry, then the clock runs from the state machine's time. gen is
// the clock generation of this leadership: if leadership is lost meanwhile,
// the clock stays stopped.
func (n *Node) establish(ctx context.Context, gen uint64) {
	for ctx.Err() == nil {
		// The term is read before the barrier is issued: if it is still
		// current (and led) once the barrier completes, the barrier ran in
		// it and every entry of earlier terms is applied.
		term, leader := n.leadingTerm()
		if !leader {
			return
		}
		errc, ok := n.track(func() raft.Future { return n.raft.Barrier(n.cfg.ElectionTimeout * 5) })
		if !ok {
			return // closing
		}
		var err error
		select {
		case err = <-errc:
		case <-ctx.Done():
			return
		}
		if err != nil {
			n.log.Warn("leader barrier failed; retrying", "err", err)
			continue
		}
		if cur, leader := n.leadingTerm(); cur != term || !leader {
			continue
		}
		var base time.Duration
		n.sm.read(func(m *fsm.Machine) { base = m.Now() })
		if !n.clock.runIf(gen, term, base) {
			return
		}
		n.log.Info("leader ready", "term", term, "replicated_time", base)
		n.sm.wakeTick() // it slept as a follower, not watching expiries
		n.registerMembers()
		if fn := n.leaderReadyFn.Load(); fn != nil {
			(*fn)(ctx)
		}
		return
	}
}

// leadingTerm returns Raft's current term and whether this node leads in
// it. Terms only grow, so a term read unchanged on both sides of the state
// means the state belongs to that term (a node leads at most once per term).
func (n *Node) leadingTerm() (term uint64, leader bool) {
	for {
		term = n.raft.CurrentTerm()
		leader = n.raft.State() == raft.Leader
		if n.raft.CurrentTerm() == term {
			return term, leader
		}
	}
}

// registerMembers writes this node's (and any known member's) addresses into
// the member directory when they are missing or changed.
func (n *Node) registerMembers() {
	want := append([]logentry.Member{{ID: n.cfg.ID, ClientAddr: n.cfg.ClientAddr, HTTPAddr: n.cfg.HTTPAddr}}, n.cfg.KnownMembers...)
	for _, m := range want {
		if m.ClientAddr == "" && m.HTTPAddr == "" {
			continue
		}
		var have logentry.Member
		n.sm.read(func(sm *fsm.Machine) { have, _ = sm.Member(m.ID) })
		if have == m {
			continue
		}
		if err := n.proposeEntry(&logentry.Entry{Kind: logentry.KindMember, Payload: logentry.EncodeMember(m)}).wait(n.ctx); err != nil {
			n.log.Warn("registering member failed", "member", m.ID, "err", err)
			return
		}
	}
}

// tick proposes an empty entry when the leader has proposed nothing for a
// tick interval, so replicated time advances and leases expire when idle,
// and just after the earliest lease expiry, so an idle cluster expires a
// lease within a commit of its due time rather than up to a tick later
// (but no sooner than expiryTickGap after the last proposal, so many
// expiries close together share an entry). It sleeps until the first of
// those (on the injected clock's timers), and waits for
// each tick to apply before the next, so a slow disk does not pile ticks
// up. The state machine wakes it when an apply brings an earlier expiry.
func (n *Node) tick() {
	defer n.wg.Done()
	for {
		// The interval is a live cluster setting.
		interval := n.tickInterval()
		wait := interval              // a follower checks back an interval later
		knows := int64(math.MinInt64) // a follower needs no wake-ups
		if t, _, ok := n.clock.now(); ok {
			knows = n.sm.nextExpiry.Load()
			wait = tickWait(interval, n.idle(), t, knows)
		}
		n.sm.tickKnows.Store(knows)
		tm := n.cfg.Clock.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			tm.Stop()
			return
		case <-n.sm.expiryWake:
			tm.Stop()
			continue
		case <-tm.C():
		}
		t, _, ok := n.clock.now()
		if !ok {
			continue
		}
		idle := n.idle()
		expiryDue := time.Duration(n.sm.nextExpiry.Load()) < t && idle >= expiryTickGap(interval)
		if idle < interval && !expiryDue {
			continue
		}
		p := n.proposeEntry(&logentry.Entry{Kind: logentry.KindBatch})
		if err := p.wait(n.ctx); err != nil && !errors.Is(err, lease.ErrNotLeader) && n.ctx.Err() == nil {
			n.log.Debug("tick failed", "err", err)
		}
	}
}

// tickWait is how long a ready leader sleeps before its next tick check:
// until it will have been idle for an interval (at once if it already has,
// as a leader just elected after a quiet spell), or until just after the
// earliest expiry nextExpiry (replicated nanoseconds; math.MaxInt64 for
// none) but no sooner than expiryTickGap after its last proposal. now is
// replicated time and idle the time since this node last proposed.
func tickWait(interval, idle, now time.Duration, nextExpiry int64) time.Duration {
	wait := max(interval-idle, 0)
	if nextExpiry != math.MaxInt64 {
		due := max(time.Duration(nextExpiry)-now+1, expiryTickGap(interval)-idle, 0)
		wait = min(wait, due)
	}
	return wait
}

// expiryTickGap is the least time between the last proposal and a tick
// proposed for a due expiry: a tenth of the tick interval.
func expiryTickGap(interval time.Duration) time.Duration { return interval / 10 }

// idle is how long ago, on the injected clock, this node last proposed.
func (n *Node) idle() time.Duration {
	return time.Duration(int64(n.cfg.Clock.Now().Sub(n.clockEpoch)) - n.lastProposal.Load())
}
