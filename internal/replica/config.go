package replica

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/clock"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/internal/settings"
	"github.com/leasehold/leasehold/lease"
)

// Peer is one voter of a cluster being bootstrapped.
type Peer struct {
	ID       string
	RaftAddr string
}

// Config configures a Node. Zero values take the defaults below.
type Config struct {
	ID      string
	DataDir string
	// RaftAddr is the address the Raft transport binds and advertises.
	RaftAddr string
	// ClientAddr and HTTPAddr are registered in the replicated member
	// directory so followers can hint the leader's client address.
	ClientAddr string
	HTTPAddr   string
	// Bootstrap, when set and the data directory holds no state, bootstraps a
	// new cluster with these voters (which must include this node).
	Bootstrap []Peer
	// KnownMembers are directory entries the leader registers when missing
	// (the dev cluster knows every member's addresses up front).
	KnownMembers []logentry.Member

	// TickInterval is how often an idle leader advances replicated time.
	TickInterval time.Duration
	Limits       lease.Limits

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	// CommitTimeout is how long an idle leader waits before it sends
	// followers an AppendEntries that only advances their commit index. A
	// follower applies an entry only once it learns it is committed, so this
	// bounds how far followers' state (and their reads) trail the leader's.
	CommitTimeout time.Duration
	// LogStore picks the Raft log store of a new data directory: "wal"
	// (raftnode/walstore, the default: one fsync per batch) or "bolt" (the
	// log in the bbolt file). An existing data directory keeps its store.
	LogStore string

	// TLS, when set, runs the Raft transport over mutual TLS (see
	// ServerTLSConfig): servers must present a certificate the cluster CA
	// signed, both when accepting and when dialing.
	TLS *tls.Config

	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's own log (warnings and up); nil discards it.
	RaftLogOutput io.Writer

	// Test and fault-injection hooks.
	// Clock is the monotonic clock the leader's replicated clock reads.
	Clock Clock
	// Transport replaces the TCP transport (RaftAddr is then only advertised).
	Transport raft.Transport
	// WrapLogStore wraps the Raft log store, e.g. to inject slow fsync.
	WrapLogStore func(raft.LogStore) raft.LogStore
}

// Clock is the monotonic clock the leader's replicated clock reads; its
// timers drive the idle tick, so a test's fake clock drives both.
type Clock = clock.Clock

func (c *Config) setDefaults() {
	if c.TickInterval <= 0 {
		c.TickInterval = settings.DefaultTickInterval
	}
	if c.Limits == (lease.Limits{}) {
		c.Limits = lease.DefaultLimits
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 1000 * time.Millisecond
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = 1000 * time.Millisecond
	}
	if c.LeaderLeaseTimeout <= 0 {
		c.LeaderLeaseTimeout = min(500*time.Millisecond, c.HeartbeatTimeout)
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 4096
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.TrailingLogs == 0 {
		// Entries hold up to a thousand commands, so keep fewer than Raft's
		// default of 10240 to bound the log on disk.
		c.TrailingLogs = 2048
	}
	if c.LogStore == "" {
		c.LogStore = LogStoreWAL
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
}

func (c *Config) validate() error {
	if c.ID == "" {
		return errors.New("raftnode: ID is required")
	}
	if c.DataDir == "" {
		return errors.New("raftnode: DataDir is required")
	}
	if c.RaftAddr == "" {
		return errors.New("raftnode: RaftAddr is required")
	}
	if c.LogStore != LogStoreWAL && c.LogStore != LogStoreBolt {
		return fmt.Errorf("raftnode: unknown log store %q (want %q or %q)", c.LogStore, LogStoreWAL, LogStoreBolt)
	}
	if len(c.Bootstrap) > 0 {
		found := false
		for _, p := range c.Bootstrap {
			if p.ID == "" || p.RaftAddr == "" {
				return fmt.Errorf("raftnode: bootstrap peer %+v needs an ID and an address", p)
			}
			found = found || p.ID == c.ID
		}
		if !found {
			return fmt.Errorf("raftnode: bootstrap peers do not include this node %q", c.ID)
		}
	}
	return nil
}
