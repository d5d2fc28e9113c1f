package replica

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/clock/clocktest"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// A leader's Close hands leadership to a peer; when that peer has already
// shut down, hashicorp/raft's transfer goroutine waits out the in-memory
// transport's RPC timeout after Shutdown returns. Every other goroutine a
// test leaves running is a leak.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*InmemTransport).makeRPC"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"))
}

// newFakeClock is the shared fake clock at a fixed start.
func newFakeClock() *clocktest.Fake { return clocktest.New(time.Unix(1_000_000, 0)) }

// testCluster is a cluster of Nodes on hashicorp/raft's in-memory
// transport, each with its own fake clock, as hashicorp/raft tests itself.
type testCluster struct {
	t      *testing.T
	nodes  []*Node
	trans  []*raft.InmemTransport
	clocks []*clocktest.Fake
}

// fastConfig shortens Raft's timeouts so elections take tens of
// milliseconds in memory.
func fastConfig(c *Config) {
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
}

// newTestCluster bootstraps n voters. mutate, if set, adjusts each config.
func newTestCluster(t *testing.T, n int, mutate func(i int, c *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t}
	var peers []Peer
	for i := range n {
		addr, tr := raft.NewInmemTransport("")
		tc.trans = append(tc.trans, tr)
		tc.clocks = append(tc.clocks, newFakeClock())
		peers = append(peers, Peer{ID: nodeID(i), RaftAddr: string(addr)})
	}
	for i := range tc.trans {
		for j := range tc.trans {
			if i != j {
				tc.trans[i].Connect(tc.trans[j].LocalAddr(), tc.trans[j])
			}
		}
	}
	for i := range n {
		cfg := Config{ID: nodeID(i), DataDir: t.TempDir(), RaftAddr: peers[i].RaftAddr, Bootstrap: peers,
			Transport: tc.trans[i], Clock: tc.clocks[i]}
		fastConfig(&cfg)
		if mutate != nil {
			mutate(i, &cfg)
		}
		nd, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, nd)
	}
	t.Cleanup(tc.close)
	return tc
}

func nodeID(i int) string { return string(rune('a' + i)) }

func (tc *testCluster) close() {
	for _, n := range tc.nodes {
		if err := n.Close(); err != nil && err != raft.ErrRaftShutdown {
			tc.t.Errorf("close %s: %v", n.ID(), err)
		}
	}
	for _, tr := range tc.trans {
		tr.Close()
	}
}

// leader waits for a node whose clock is ready and returns it.
func (tc *testCluster) leader() *Node {
	tc.t.Helper()
	var l *Node
	waitFor(tc.t, "a ready leader", func() bool {
		for _, n := range tc.nodes {
			if _, ok := n.Now(); ok {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

func (tc *testCluster) index(n *Node) int {
	for i, m := range tc.nodes {
		if m == n {
			return i
		}
	}
	tc.t.Fatalf("node %s not in the cluster", n.ID())
	return -1
}

// isolate cuts node i off from every other node (both directions).
func (tc *testCluster) isolate(i int) {
	tc.trans[i].DisconnectAll()
	for j, tr := range tc.trans {
		if j != i {
			tr.Disconnect(tc.trans[i].LocalAddr())
		}
	}
}

// heal reconnects node i to every other node.
func (tc *testCluster) heal(i int) {
	for j, tr := range tc.trans {
		if j != i {
			tc.trans[i].Connect(tr.LocalAddr(), tr)
			tr.Connect(tc.trans[i].LocalAddr(), tc.trans[i])
		}
	}
}

// replicatedTime is node n's state machine time.
func replicatedTime(n *Node) time.Duration {
	var t time.Duration
	n.sm.read(func(m *fsm.Machine) { t = m.Now() })
	return t
}

var testKey = lease.Key{Namespace: "ns", Group: "g", Name: "k"}

func claimCmd(holder string, d time.Duration) lease.Command {
	return lease.Command{Op: lease.OpClaim, Key: testKey, Holder: holder, Duration: d, Deadline: forever}
}

// forever is a command deadline that never passes in a test.
const forever = time.Duration(1 << 60)

// waitFor polls cond until it holds, failing the test after a minute (a
// bound for a stuck test on a loaded machine, not a speed check).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
