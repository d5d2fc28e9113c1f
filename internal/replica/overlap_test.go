package replica

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/lease"
)

// storeRecorder is a log store that tells a shared witness which indexes it
// stored, and, on the node the witness marks as the leader, holds each
// StoreLogs of a new entry until a follower has stored that entry (or a
// while has passed, which the witness counts).
type storeRecorder struct {
	raft.LogStore
	id string
	w  *overlapWitness
}

type overlapWitness struct {
	mu       sync.Mutex
	cond     *sync.Cond
	leader   string            // the node whose writes wait; "" until chosen
	stored   map[string]uint64 // each node's highest stored index
	from     uint64            // writes of entries from this index on wait
	waited   int               // leader writes that saw a follower's first
	timedOut int               // leader writes no follower's preceded
}

func (s storeRecorder) StoreLogs(logs []*raft.Log) error {
	last := logs[len(logs)-1].Index
	w := s.w
	w.mu.Lock()
	if s.id == w.leader && w.from > 0 && last >= w.from {
		deadline := time.Now().Add(500 * time.Millisecond)
		// A timer wakes the wait at the deadline: the cond has no timeout.
		t := time.AfterFunc(500*time.Millisecond, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
		for !w.followerHas(last) && time.Now().Before(deadline) {
			w.cond.Wait()
		}
		t.Stop()
		if w.followerHas(last) {
			w.waited++
		} else {
			w.timedOut++
		}
	}
	w.mu.Unlock()
	if err := s.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	w.mu.Lock()
	w.stored[s.id] = max(w.stored[s.id], last)
	w.cond.Broadcast()
	w.mu.Unlock()
	return nil
}

func (s storeRecorder) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (w *overlapWitness) followerHas(index uint64) bool {
	for id, last := range w.stored {
		if id != w.leader && last >= index {
			return true
		}
	}
	return false
}

// The leader sends a new entry to the followers while it writes the entry
// to its own disk, not after: a leader's write that cannot finish until a
// follower has stored the entry finishes at once. (Unmodified
// hashicorp/raft writes first and replicates after, so every such write
// waits out the witness's deadline.) The entries still commit and apply
// everywhere.
func TestLeaderReplicatesWhileItWrites(t *testing.T) {
	w := &overlapWitness{stored: make(map[string]uint64)}
	w.cond = sync.NewCond(&w.mu)
	tc := newTestCluster(t, 3, func(i int, c *Config) {
		id := c.ID
		c.WrapLogStore = func(s raft.LogStore) raft.LogStore { return storeRecorder{LogStore: s, id: id, w: w} }
	})
	l := tc.leader()
	w.mu.Lock()
	w.leader = l.ID()
	w.from = l.raft.LastIndex() + 1
	w.mu.Unlock()

	const entries = 5
	for i := range entries {
		p, err := l.Propose([]lease.Command{claimCmd("h", time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		if _, err := p.Result(); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	w.mu.Lock()
	waited, timedOut := w.waited, w.timedOut
	w.mu.Unlock()
	if timedOut > 0 || waited < entries {
		t.Fatalf("of the leader's writes, %d found a follower had the entry and %d waited for it in vain: the leader replicates only after writing", waited, timedOut)
	}
	want := l.raft.AppliedIndex()
	waitFor(t, "every node applied the entries", func() bool {
		for _, n := range tc.nodes {
			if n.raft.AppliedIndex() < want {
				return false
			}
		}
		return true
	})
}
