package replica

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

func propose(t *testing.T, n *Node, cmds ...lease.Command) []lease.Result {
	t.Helper()
	p, err := n.Propose(cmds)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	res, err := p.Result()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func get(t *testing.T, n *Node, k lease.Key) (info lease.Info, found bool, at time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, at, err := n.ReadConsistent(ctx, func(m *fsm.Machine, at time.Duration) { info, found = m.Get(k, at) })
	if err != nil {
		t.Fatal(err)
	}
	return info, found, at
}

// Restoring a snapshot continues replicated time from the snapshot's time:
// a lease keeps the time it had left when the snapshot was taken, however
// long the restoring cluster has been running.
func TestRestoreDoesNotJumpTheClock(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	l := tc.leader()
	if r := propose(t, l, claimCmd("h", 4*time.Minute)); r[0].Outcome != lease.OutcomeGranted {
		t.Fatalf("claim: %+v", r[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, _, err := l.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	taken := replicatedTime(l)

	tc.clocks[0].Advance(time.Hour)
	propose(t, l) // replicated time moves an hour on: the lease expires
	if _, found, _ := get(t, l, testKey); found {
		t.Fatal("lease still held an hour after it expired")
	}

	if err := l.RestoreSnapshot(ctx, data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the clock after the restore", func() bool { _, ok := l.Now(); return ok })
	if now, _ := l.Now(); now > taken+time.Minute {
		t.Errorf("leader clock after restore at %v, snapshot taken at %v", now, taken)
	}
	info, found, at := get(t, l, testKey)
	if !found {
		t.Fatalf("restored lease absent at %v; snapshot taken at %v", at, taken)
	}
	if info.Holder != "h" {
		t.Fatalf("restored lease: %+v", info)
	}
}
