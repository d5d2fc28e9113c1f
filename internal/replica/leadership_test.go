package replica

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// A leader that loses and regains leadership before its leadership watcher
// runs (LeaderCh coalesces false+true into one true) must not read its old
// term's clock: no entry may be stamped with it (it counts the time it did
// not lead, so replicated time would jump) and no read may be served before
// the new term's barrier.
func TestLoseAndRegainBeforeWatcherRuns(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	li := tc.index(l)
	term := l.raft.CurrentTerm()
	before := replicatedTime(l)

	// Stall l's leadership watcher, then depose it and give it back
	// leadership in a later term.
	l.leadershipMu.Lock()
	held := true
	defer func() {
		if held {
			l.leadershipMu.Unlock()
		}
	}()
	tc.isolate(li)
	var other *Node
	waitFor(t, "another leader", func() bool {
		for i, n := range tc.nodes {
			if i != li && n.raft.State() == raft.Leader {
				other = n
				return true
			}
		}
		return false
	})
	waitFor(t, "the old leader to step down", func() bool { return l.raft.State() != raft.Leader })
	// The time l did not lead: its old clock would count it.
	const gap = time.Hour
	tc.clocks[li].Advance(gap)
	tc.heal(li)
	waitFor(t, "the old leader to regain leadership", func() bool {
		if l.raft.State() == raft.Leader {
			return true
		}
		if other.raft.State() == raft.Leader {
			other.raft.LeadershipTransferToServer(raft.ServerID(l.ID()), l.trans.LocalAddr()).Error()
		}
		return false
	})
	if l.raft.CurrentTerm() <= term {
		t.Fatalf("regained leadership in term %d, not after %d", l.raft.CurrentTerm(), term)
	}

	if now, ok := l.Now(); ok {
		t.Errorf("clock of term %d readable in term %d before its barrier: %v", term, l.raft.CurrentTerm(), now)
	}
	p, err := l.Propose([]lease.Command{claimCmd("h", time.Minute)})
	if err == nil {
		<-p.Done()
		if _, err = p.Result(); err == nil {
			t.Errorf("entry stamped by the stale clock was applied; replicated time %v", replicatedTime(l))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, at, err := l.ReadConsistent(ctx, func(*fsm.Machine, time.Duration) {}); err == nil {
		t.Errorf("read served from the stale clock at %v", at)
	}

	// Once the watcher runs, the new term is readied from the state
	// machine's time: the gap is never counted.
	l.leadershipMu.Unlock()
	held = false
	waitFor(t, "the new term to be ready", func() bool { _, ok := l.Now(); return ok || l.raft.State() != raft.Leader })
	for _, n := range tc.nodes {
		if got := replicatedTime(n); got >= before+gap {
			t.Errorf("replica %s: replicated time jumped from %v to %v", n.ID(), before, got)
		}
	}
}

// A leader that cannot serve yet (establishing its term, or handing
// leadership over) answers NotLeader with a retry-after, not Unavailable,
// which clients take for "unreachable, try elsewhere at once".
func TestNotReadyLeaderAnswersNotLeader(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	l := tc.leader()
	gen, term := l.clock.pause()
	_, err := l.Propose([]lease.Command{claimCmd("h", time.Minute)})
	var le *lease.Error
	if !errors.As(err, &le) || le.Code != lease.CodeNotLeader || le.RetryAfter <= 0 {
		t.Fatalf("proposal on a leader establishing its term: %v", err)
	}
	if le.LeaderID == l.ID() {
		t.Fatalf("hinted at itself: %+v", le)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := l.ReadConsistent(ctx, func(*fsm.Machine, time.Duration) {}); lease.CodeOf(err) != lease.CodeNotLeader {
		t.Fatalf("read on a leader establishing its term: %v", err)
	}
	if !l.clock.runIf(gen, term, replicatedTime(l)) {
		t.Fatal("clock did not restart")
	}
	propose(t, l, claimCmd("h", time.Minute))
}

// Leadership moves around the cluster: each new leader readies its term
// from the replicated time in the log, whatever its own clock says, the old
// leader's clock stops, and replicated time and tokens only go forward.
func TestLeadershipChanges(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	// Local clocks far apart: replicated time must not follow any of them.
	tc.clocks[1].Advance(24 * time.Hour)
	tc.clocks[2].Advance(time.Minute)
	l := tc.leader()
	var lastTime time.Duration
	var lastToken uint64
	for round := range 4 {
		holder := fmt.Sprint("h", round)
		// The previous holder revokes, so the key is free for this one.
		if round > 0 {
			propose(t, l, lease.Command{Op: lease.OpRevoke, Key: testKey, Holder: fmt.Sprint("h", round-1), Deadline: forever})
		}
		r := propose(t, l, claimCmd(holder, time.Minute))[0]
		if r.Outcome != lease.OutcomeGranted || r.Token <= lastToken || r.Now < lastTime {
			t.Fatalf("round %d on %s: %+v after token %d at %v", round, l.ID(), r, lastToken, lastTime)
		}
		if r.Now > lastTime+time.Minute {
			t.Fatalf("round %d on %s: replicated time jumped from %v to %v", round, l.ID(), lastTime, r.Now)
		}
		lastTime, lastToken = r.Now, r.Token

		old := l
		if err := old.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("transfer from %s: %v", old.ID(), err)
		}
		waitFor(t, "a new leader", func() bool {
			for _, n := range tc.nodes {
				if _, ok := n.Now(); ok && n != old {
					l = n
					return true
				}
			}
			return false
		})
		if now, ok := old.Now(); ok {
			t.Fatalf("old leader %s still reads its clock: %v", old.ID(), now)
		}
		if now, _ := l.Now(); now < lastTime {
			t.Fatalf("new leader %s's clock %v behind the log's %v", l.ID(), now, lastTime)
		}
	}
}

// Close hands leadership to another voter, stops the clock, refuses new
// proposals and reads, and can be called again; goleak (TestMain) checks
// that nothing it started keeps running.
func TestCloseLeader(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	propose(t, l, claimCmd("h", time.Minute))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Now(); ok {
		t.Fatal("closed node reads its clock")
	}
	if _, err := l.Propose([]lease.Command{claimCmd("h", time.Minute)}); lease.CodeOf(err) != lease.CodeUnavailable {
		t.Fatalf("proposal on a closed node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := l.ReadConsistent(ctx, func(*fsm.Machine, time.Duration) {}); err == nil {
		t.Fatal("read served by a closed node")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var next *Node
	waitFor(t, "another leader", func() bool {
		for _, n := range tc.nodes {
			if _, ok := n.Now(); ok && n != l {
				next = n
				return true
			}
		}
		return false
	})
	if info, found, _ := get(t, next, testKey); !found || info.Holder != "h" {
		t.Fatalf("lease after the handover: %v %+v", found, info)
	}
}
