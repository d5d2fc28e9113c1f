// Package servertest runs Leasehold's gRPC API over an in-memory fake
// backend: one fsm.Machine behind a mutex, shared by N fake nodes, of which
// one (switchable) is the leader and the others answer NotLeader with its
// hint. Errors and blocking are injected with a write hook. It is for tests
// of the server, the Go client and the CLI; it has no Raft, no admission
// queue and no persistence.
package servertest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// Cluster is the shared state of the fake nodes.
type Cluster struct {
	mu     sync.Mutex
	m      *fsm.Machine
	index  uint64
	start  time.Time
	clock  func() time.Duration
	leader string
	nodes  []*Node
	hub    *grpcserver.WatchHub
	limits lease.Limits
	renew  float64 // renew_fraction; 0: the server's default

	onWrite func(ctx context.Context, node string, cmds []lease.Command) error
	onRead  func(ctx context.Context, node string, stale bool) error
}

// Node is one fake server: a server.Backend (and server.Watcher, server.Limiter).
type Node struct {
	c    *Cluster
	ID   string
	Addr string // client address, set by Start
}

var _ interface {
	grpcserver.Backend
	grpcserver.Watcher
	grpcserver.Limiter
} = (*Node)(nil)

// NewCluster makes n nodes "n1".."nN"; "n1" leads. The replicated clock is
// real elapsed time since creation unless SetClock replaces it.
func NewCluster(n int) *Cluster {
	c := &Cluster{m: fsm.New(), start: time.Now(), leader: "n1",
		hub: grpcserver.NewWatchHub(0, 256), limits: lease.DefaultLimits}
	c.clock = func() time.Duration { return time.Since(c.start) }
	c.m.RecordEvents(true)
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, &Node{c: c, ID: fmt.Sprintf("n%d", i)})
	}
	return c
}

// Nodes returns the nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node with the given ID, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// SetOnWrite sets a hook run before every write on any node, without the
// lock held (nil removes it). A non-nil error is returned as the write's
// error; a hook may block (on ctx.Done(), to test cancellation).
func (c *Cluster) SetOnWrite(fn func(ctx context.Context, node string, cmds []lease.Command) error) {
	c.mu.Lock()
	c.onWrite = fn
	c.mu.Unlock()
}

// SetOnRead is SetOnWrite for reads.
func (c *Cluster) SetOnRead(fn func(ctx context.Context, node string, stale bool) error) {
	c.mu.Lock()
	c.onRead = fn
	c.mu.Unlock()
}

// SetLeader makes id the leader ("" for no leader).
func (c *Cluster) SetLeader(id string) {
	c.mu.Lock()
	c.leader = id
	c.mu.Unlock()
}

// SetClock replaces the replicated clock (for deterministic expiry).
func (c *Cluster) SetClock(f func() time.Duration) {
	c.mu.Lock()
	c.clock = f
	c.mu.Unlock()
}

// Machine runs fn on the state machine under the lock.
func (c *Cluster) Machine(fn func(m *fsm.Machine)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.m)
}

// Index returns the last applied index (the number of writes applied).
func (c *Cluster) Index() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

// Tick applies an empty entry at the current clock reading, expiring leases.
func (c *Cluster) Tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyLocked(nil, c.clock())
}

func (c *Cluster) leaderHint() *lease.Error {
	e := &lease.Error{Code: lease.CodeNotLeader}
	if l := c.Node(c.leader); l != nil {
		e.LeaderID, e.LeaderAddr = l.ID, l.Addr
	}
	return e
}

// applyLocked applies one entry and feeds its events to the watchers.
func (c *Cluster) applyLocked(cmds []lease.Command, now time.Duration) []lease.Result {
	c.index++
	res := c.m.Apply(c.index, &logentry.Entry{Kind: logentry.KindBatch, Time: now, Commands: cmds})
	c.hub.Publish(c.m.TakeEvents())
	return res
}

// Write implements server.Backend.
func (n *Node) Write(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	c := n.c
	c.mu.Lock()
	hook := c.onWrite
	c.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n.ID, cmds); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil { // not yet "proposed": withdraw
		return nil, lease.ContextError(err, false)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != n.ID {
		return nil, c.leaderHint()
	}
	now := c.clock()
	deadline := now + 10*time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = now + time.Until(d)
	}
	stamped := make([]lease.Command, len(cmds))
	for i, cmd := range cmds {
		cmd.Deadline = deadline
		stamped[i] = cmd
	}
	return c.applyLocked(stamped, now), nil
}

// Read implements server.Backend.
func (n *Node) Read(ctx context.Context, stale bool, fn func(m *fsm.Machine, at time.Duration)) (grpcserver.ReadMeta, error) {
	c := n.c
	c.mu.Lock()
	hook := c.onRead
	c.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n.ID, stale); err != nil {
			return grpcserver.ReadMeta{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return grpcserver.ReadMeta{}, lease.ContextError(err, false)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at := c.m.Now()
	if !stale {
		if c.leader != n.ID {
			return grpcserver.ReadMeta{}, c.leaderHint()
		}
		at = max(at, c.clock())
	}
	fn(c.m, at)
	return grpcserver.ReadMeta{AppliedIndex: c.index, Now: at}, nil
}

// Status implements server.Backend.
func (n *Node) Status() grpcserver.Status {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	st := grpcserver.Status{ID: n.ID, State: "follower", LeaderID: c.leader, Term: 1, CommitIndex: c.index,
		AppliedIndex: c.index, LastIndex: c.index, Now: c.m.Now(), Leases: c.m.Len()}
	if l := c.Node(c.leader); l != nil {
		st.LeaderAddr = l.Addr
	}
	if c.leader == n.ID {
		st.State = "leader"
	}
	for _, m := range c.nodes {
		st.Members = append(st.Members, grpcserver.Member{ID: m.ID, ClientAddr: m.Addr, Voter: true, Leader: m.ID == c.leader})
	}
	return st
}

// Limits implements server.Limiter.
func (n *Node) Limits() lease.Limits {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.c.limits
}

// SetRenewFraction sets the renew_fraction setting the nodes report.
func (c *Cluster) SetRenewFraction(f float64) {
	c.mu.Lock()
	c.renew = f
	c.mu.Unlock()
}

// RenewFraction implements server.RenewFractioner.
func (n *Node) RenewFraction() float64 {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.renew == 0 {
		return 0.5
	}
	return n.c.renew
}

// Watch implements server.Watcher.
func (n *Node) Watch(ctx context.Context, from uint64, f grpcserver.WatchFilter, send func(uint64, []lease.Event) error) error {
	return n.c.hub.Watch(ctx, from, f, send)
}

// Start serves every node of c on its own 127.0.0.1:0 listener with opts,
// sets each node's Addr, and stops the servers when the test ends.
func Start(tb testing.TB, c *Cluster, opts grpcserver.Options) []string {
	tb.Helper()
	addrs, stop, err := Serve(c, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return addrs
}

// Serve is Start without a testing.TB: it returns the addresses and a stop
// function.
func Serve(c *Cluster, opts grpcserver.Options) ([]string, func(), error) {
	var servers []*grpcserver.Server
	stop := func() {
		for _, s := range servers {
			s.Stop()
		}
	}
	var addrs []string
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, nil, err
		}
		s, err := grpcserver.New(n, opts)
		if err != nil {
			lis.Close()
			stop()
			return nil, nil, err
		}
		c.mu.Lock()
		n.Addr = lis.Addr().String()
		c.mu.Unlock()
		addrs = append(addrs, n.Addr)
		servers = append(servers, s)
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Serve(lis) }()
	}
	return addrs, func() { stop(); wg.Wait() }, nil
}

// ResetWatches does to the watch hub what installing a snapshot at index
// does (raftnode's restore hook): every watcher ends with compacted and
// watches can only start after index.
func (c *Cluster) ResetWatches(index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hub.Reset(index)
	c.index = max(c.index, index)
}
