package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/fsm"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/logentry"
	"github.com/leasehold/leasehold/raftnode/boltstore"
	"github.com/leasehold/leasehold/raftnode/walstore"
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

	tickNanos  atomic.Int64 // live tick interval (settings.go)
	settingsFn atomic.Pointer[func(payload []byte)]

	// proposeMu orders clock readings with appends, so entry stamps increase
	// in log order.
	proposeMu    sync.Mutex
	lastProposal atomic.Int64 // monotonic nanoseconds since clockEpoch of the last proposal
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
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), sm: newStateMachine(cfg.Limits)}
	n.initSettings()
	n.clock.clock = cfg.Clock
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
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	out := cfg.RaftLogOutput
	if out == nil {
		out = io.Discard
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft-" + cfg.ID, Level: hclog.Warn, Output: out})

	// The stable store (term, vote) is a bbolt file; the log is walstore or,
	// in data directories created that way, the same bbolt file (see
	// openLogStore, and boltstore's doc for why not raft-wal).
	dbPath := filepath.Join(cfg.DataDir, "raft.db")
	if err := refuseOldWAL(cfg.DataDir, dbPath); err != nil {
		return err
	}
	w, err := boltstore.Open(dbPath)
	if err != nil {
		return fmt.Errorf("raftnode: open log: %w", err)
	}
	n.store = w
	logs, wal, err := openLogStore(cfg, w)
	if err != nil {
		return err
	}
	n.wal = wal
	if cfg.WrapLogStore != nil {
		logs = cfg.WrapLogStore(logs)
	}
	// Followers are fed from recent entries; serve those from memory rather
	// than re-reading and re-decoding them from disk for every replica.
	if logs, err = raft.NewLogCache(logCacheEntries, logs); err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("raftnode: open snapshots: %w", err)
	}
	if cfg.Transport != nil {
		n.trans = cfg.Transport
	} else {
		// A nil advertise address makes the transport advertise what it
		// bound, which supports port 0 in tests.
		var advertise net.Addr
		if _, port, _ := net.SplitHostPort(cfg.RaftAddr); port != "0" {
			a, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
			if err != nil {
				return fmt.Errorf("raftnode: raft address: %w", err)
			}
			advertise = a
		}
		var t *raft.NetworkTransport
		if cfg.TLS != nil {
			t, err = newTLSTransport(cfg.RaftAddr, advertise, cfg.TLS, hlog)
		} else {
			t, err = raft.NewTCPTransportWithLogger(cfg.RaftAddr, advertise, 4, 10*time.Second, hlog)
		}
		if err != nil {
			return fmt.Errorf("raftnode: raft transport: %w", err)
		}
		n.trans = t
	}

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

	if len(cfg.Bootstrap) > 0 {
		has, err := raft.HasExistingState(logs, w, snaps)
		if err != nil {
			return err
		}
		if !has {
			var servers []raft.Server
			for _, p := range cfg.Bootstrap {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
			}
			if err := raft.BootstrapCluster(rc, logs, w, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
				return fmt.Errorf("raftnode: bootstrap: %w", err)
			}
			n.log.Info("bootstrapped new cluster", "voters", len(servers))
		}
	}
	r, err := raft.NewRaft(rc, n.sm, logs, w, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("raftnode: start raft: %w", err)
	}
	n.raft = r
	return nil
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
	old, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil || len(old) == 0 {
		return nil
	}
	return fmt.Errorf("raftnode: %s holds a raft-wal log from an earlier version, which this version cannot read; rebuild this server from an empty data directory (remove it from the cluster, clear the directory, add it back)", dir)
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
	var servers []raft.Server
	for _, p := range peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	return n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
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
	term := n.raft.CurrentTerm()
	for ctx.Err() == nil && n.raft.State() == raft.Leader {
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
		if ctx.Err() != nil || n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
			return
		}
		var base time.Duration
		n.sm.read(func(m *fsm.Machine) { base = m.Now() })
		if !n.clock.runIf(gen, term, base) {
			return
		}
		n.log.Info("leader ready", "term", term, "replicated_time", base)
		n.registerMembers()
		return
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
// tick interval, so replicated time advances and leases expire when idle. It
// waits for each tick to apply before the next, so a slow disk does not pile
// ticks up.
func (n *Node) tick() {
	defer n.wg.Done()
	interval := n.tickInterval()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		// The interval is a live cluster setting.
		if iv := n.tickInterval(); iv != interval {
			interval = iv
			t.Reset(interval)
		}
		if _, _, ok := n.clock.now(); !ok {
			continue
		}
		idle := time.Duration(int64(n.cfg.Clock.Since(n.clockEpoch)) - n.lastProposal.Load())
		if idle < interval {
			continue
		}
		p := n.proposeEntry(&logentry.Entry{Kind: logentry.KindBatch})
		if err := p.wait(n.ctx); err != nil && !errors.Is(err, lease.ErrNotLeader) && n.ctx.Err() == nil {
			n.log.Debug("tick failed", "err", err)
		}
	}
}
