package faults

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// Kinds added for issue 12: a follower that must install a snapshot, and a
// leader that loses and regains leadership at once. (mixed-flags, which
// needs server processes, is in procs.go.)

const (
	snapTrailing  = 32
	snapThreshold = 64
)

func init() {
	Kinds = append(Kinds,
		Kind{Name: "follower-snapshot",
			Doc: "crash a follower; while it is down the cluster writes past the trailing log and every running server snapshots and compacts; the restarted follower must install the leader's snapshot, then keep up",
			Raft: func(c *replica.Config) {
				c.TrailingLogs, c.SnapshotThreshold, c.SnapshotInterval = snapTrailing, snapThreshold, 500*time.Millisecond
			},
			Restarts: true, MinSlice: 6 * time.Second,
			Cycle: followerSnapshot},
		Kind{Name: "leader-flap",
			Doc:   "the leader loses and regains leadership within a heartbeat: alternately a transfer to a follower and straight back once that follower's clock runs, and a cut of the leader's Raft links just long enough for its leader lease to lapse (it steps down) but shorter than the followers' election timeout, then leadership handed back to it",
			Cycle: leaderFlap},
	)
}

// raftOf returns member i's Raft, or nil while it is stopped.
func (e *Env) raftOf(i int) *raft.Raft {
	if n := e.C.Members[i].Raft(); n != nil {
		return n.Raft()
	}
	return nil
}

// waitFor polls cond every 5 ms for up to d.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(end) {
			return false
		}
		hold(ctx, 5*time.Millisecond)
	}
	return true
}

func followerSnapshot(ctx context.Context, e *Env) error {
	_, li, err := e.leader(ctx)
	if err != nil {
		return err
	}
	fi := (li + 1) % len(e.C.Members)
	fr := e.raftOf(fi)
	if fr == nil {
		return nil
	}
	before := fr.LastIndex()
	id := e.C.Members[fi].ID
	e.Net.Cut(id, e.IDs(id)...)
	err = e.C.Stop(fi)
	e.Net.Heal()
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	e.tie(ctx)
	// The log must move well past what the stopped follower has before the
	// snapshots, so that what it needs next is compacted away everywhere.
	waitFor(ctx, 4*time.Second, func() bool {
		l := e.C.Leader()
		return l != nil && l.Raft() != nil && l.Raft().Raft().LastIndex() > before+snapTrailing+snapThreshold
	})
	for i := range e.C.Members {
		if r := e.raftOf(i); r != nil {
			// ErrNothingNewToSnapshot is fine: a periodic snapshot came first.
			if err := r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
				e.count("snapshot-errors", 1)
			}
		}
	}
	if err := e.C.Restart(fi); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	e.count("follower-restarts", 1)
	// Installed: its latest snapshot is past everything it had before.
	installed := waitFor(ctx, 5*time.Second, func() bool {
		r := e.raftOf(fi)
		if r == nil {
			return false
		}
		var idx uint64
		fmt.Sscan(r.Stats()["last_snapshot_index"], &idx)
		return idx > before
	})
	if installed {
		e.count("snapshot-installs", 1)
	}
	hold(ctx, time.Second)
	return nil
}

// tie leaves a tie pending in the snapshots the stopped follower will
// install: two fresh keys claimed in one entry for one duration (so they
// expire at the same replicated instant) with a claimant queued on each,
// so that after the install one expiry grants both queued claimants in
// the expiry heap's pop order, which must be the same on the restored
// replica as on the live ones (issue 12, hole 2). The keys are in the
// suite's namespace, so the replica sampler compares them.
func (e *Env) tie(ctx context.Context) {
	c, err := e.NewClient(0)
	if err != nil {
		return
	}
	defer c.Close()
	e.mu.Lock()
	n := e.counts["ties"]
	e.mu.Unlock()
	k := func(s string) lease.Key {
		return lease.Key{Namespace: Key(0).Namespace, Group: "t", Name: fmt.Sprintf("c%d%s", n, s)}
	}
	const d = 3 * time.Second
	// Listed in reverse key order: a heap rebuilt in key order would pop them the other way round.
	cmds := []lease.Command{{Op: lease.OpClaim, Key: k("b"), Holder: "tie", Duration: d}, {Op: lease.OpClaim, Key: k("a"), Holder: "tie", Duration: d},
		{Op: lease.OpQueueClaim, Key: k("b"), Holder: "next", Duration: d, Wait: 10 * time.Second},
		{Op: lease.OpQueueClaim, Key: k("a"), Holder: "next", Duration: d, Wait: 10 * time.Second}}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rs, err := c.Bulk(cctx, cmds)
	if err != nil {
		return
	}
	for _, r := range rs[:2] {
		if r.Err != nil || r.Result.Outcome != lease.OutcomeGranted || r.Result.Start != rs[0].Result.Start {
			return
		}
	}
	e.count("ties", 1)
}

// leaderFlap makes the leader lose and regain leadership, by one of two
// methods in turn.
//
//   - Transfer and back: hashicorp/raft's LeadershipTransfer sends the
//     most caught-up follower TimeoutNow; it wins an election at once
//     (term+1). As soon as its clock is ready (its barrier applied, so it
//     may stamp entries), LeadershipTransferToServer hands leadership back
//     to the old leader (term+2). The old leader is out for the time of
//     two elections and one barrier: a few to some tens of ms on loopback,
//     far less than the 300 ms heartbeat timeout.
//   - Lease lapse: all of the leader's Raft links fail at once. A
//     hashicorp/raft leader that has not heard from a quorum within
//     LeaderLeaseTimeout (150 ms here) steps down to follower by itself;
//     the followers only start an election after HeartbeatTimeout
//     (300-600 ms randomized) without contact. The links heal the moment the
//     leader has stepped down, before any follower times out, and then
//     leadership is handed back to it (if a follower won the election) or
//     it wins it itself.
//
// Either way the node's leadership observer (raftnode's watch of LeaderCh)
// sees leadership go and come back within one heartbeat: the case where a
// clock not tied to the current term keeps its old base (issue 12, hole 4).
func leaderFlap(ctx context.Context, e *Env) error {
	_, li, err := e.leader(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	n := e.counts["flaps"]
	e.mu.Unlock()
	a := e.C.Members[li]
	ar := e.raftOf(li)
	if ar == nil {
		return nil
	}
	began := time.Now()
	if n%2 == 0 {
		if err := ar.LeadershipTransfer().Error(); err != nil {
			e.count("transfer-errors", 1)
			hold(ctx, 300*time.Millisecond)
			return nil
		}
		e.count("flaps-transfer", 1)
	} else {
		e.Net.SetBlackhole(false)
		e.Net.Cut(a.ID, e.IDs(a.ID)...)
		stepped := waitFor(ctx, time.Second, func() bool { return ar.State() != raft.Leader })
		e.Net.Heal()
		if stepped {
			e.count("flaps-lease-lapse", 1)
		}
	}
	e.count("flaps", 1)
	// Hand leadership back to a once someone (else) leads with a ready clock.
	back := waitFor(ctx, 3*time.Second, func() bool {
		if ar.State() == raft.Leader {
			return true
		}
		l := e.C.Leader()
		if l == nil || l == a || l.Raft() == nil {
			return false
		}
		l.Raft().Raft().LeadershipTransferToServer(raft.ServerID(a.ID), raft.ServerAddress(a.RaftAddr)).Error()
		return ar.State() == raft.Leader
	})
	if back {
		e.count("flaps-regained", 1)
		if gap := time.Since(began); gap < 300*time.Millisecond {
			e.count("flaps-within-heartbeat", 1)
		}
	}
	hold(ctx, 700*time.Millisecond)
	return nil
}
