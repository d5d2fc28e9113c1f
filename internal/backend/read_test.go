package backend_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
	"github.com/leasehold/leasehold/lease"
)

func TestMain(m *testing.M) {
	// A closing leader's handover may leave hashicorp/raft's in-memory RPC
	// waiting out its timeout after Shutdown (see raftnode's TestMain).
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*InmemTransport).makeRPC"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"))
}

// A replica cut off from the leader must not answer stale reads as if it
// were current (lag 0): it says it has not heard from a leader.
func TestCutOffReplicaStaleRead(t *testing.T) {
	const n = 3
	var trans []*raft.InmemTransport
	var peers []replica.Peer
	for i := range n {
		addr, tr := raft.NewInmemTransport("")
		trans = append(trans, tr)
		peers = append(peers, replica.Peer{ID: string(rune('a' + i)), RaftAddr: string(addr)})
	}
	for _, a := range trans {
		for _, b := range trans {
			if a != b {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	var nodes []*backend.Node
	for i := range n {
		r, err := replica.Open(replica.Config{ID: peers[i].ID, DataDir: t.TempDir(), RaftAddr: peers[i].RaftAddr,
			Bootstrap: peers, Transport: trans[i], HeartbeatTimeout: 100 * time.Millisecond,
			ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		nd, err := backend.New(r, backend.Options{})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
		t.Cleanup(func() { nd.Close(); r.Close(); trans[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var leader, follower int
	testutil.WaitFor(t, time.Minute, "a ready leader", func() bool {
		for i, nd := range nodes {
			if _, ok := nd.Raft().Now(); ok {
				leader, follower = i, (i+1)%n
				return true
			}
		}
		return false
	})
	cmd := lease.Command{Op: lease.OpClaim, Key: lease.Key{Namespace: "ns", Group: "g", Name: "k"}, Holder: "h", Duration: time.Minute}
	if _, err := nodes[leader].Write(ctx, []lease.Command{cmd}); err != nil {
		t.Fatal(err)
	}
	f := nodes[follower]
	read := func() (grpcserver.ReadMeta, error) {
		return f.Read(ctx, true, func(*fsm.Machine, time.Duration) {})
	}
	testutil.WaitFor(t, time.Minute, "the follower to catch up", func() bool { m, err := read(); return err == nil && m.Lag == 0 })

	// Cut the follower off and let the others carry on.
	trans[follower].DisconnectAll()
	for i, tr := range trans {
		if i != follower {
			tr.Disconnect(trans[follower].LocalAddr())
		}
	}
	et := 100 * time.Millisecond
	testutil.WaitFor(t, time.Minute, "the follower's last contact to age past an election timeout", func() bool {
		return time.Since(f.Raft().Raft().LastContact()) > 2*et
	})
	meta, err := read()
	if err == nil {
		t.Fatalf("cut-off replica served a stale read as current: applied %d lag %d", meta.AppliedIndex, meta.Lag)
	}
	if lease.CodeOf(err) != lease.CodeUnavailable {
		t.Fatalf("cut-off replica's stale read: %v", err)
	}
	t.Log(err)
}
