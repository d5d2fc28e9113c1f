package replica_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
	"github.com/leasehold/leasehold/lease"
)

// A follower that fell behind the leader's compacted log installs a
// snapshot; with walstore (a MonotonicLogStore) Raft then deletes the
// follower's whole log and appends after the snapshot index. Behind a
// wrapper that hides IsMonotonic (as fault-injection wrappers do), Raft
// compacts instead and appends past a gap. Either way the follower must
// catch up, and come back from a restart with everything.
func TestFollowerInstallsSnapshotOnWALStore(t *testing.T) {
	for _, hide := range []bool{false, true} {
		t.Run(fmt.Sprintf("hide-monotonic=%v", hide), func(t *testing.T) { testInstall(t, hide) })
	}
}

// plainStore hides every method but raft.LogStore's.
type plainStore struct{ raft.LogStore }

func testInstall(t *testing.T, hideMonotonic bool) {
	c, err := devcluster.Start(context.Background(), devcluster.Options{Dir: t.TempDir(), Raft: func(rc *replica.Config) {
		testutil.FastRaft(rc)
		rc.SnapshotThreshold, rc.TrailingLogs = 16, 4
		rc.LogStore = replica.LogStoreWAL
		if hideMonotonic {
			rc.WrapLogStore = func(s raft.LogStore) raft.LogStore { return plainStore{s} }
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	write := func(name string) {
		t.Helper()
		for ctx.Err() == nil {
			l, err := c.WaitLeader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.Node().Write(ctx, []lease.Command{{Op: lease.OpClaim, Key: testKey(name), Holder: "h", Duration: 5 * time.Minute}})
			if err == nil {
				if res[0].Code != lease.CodeOK {
					t.Fatalf("claim %s: %+v", name, res[0])
				}
				return
			}
			if !lease.IsRetryable(err) {
				t.Fatal(err)
			}
		}
		t.Fatal(ctx.Err())
	}
	has := func(m *devcluster.Member, name string) (ok bool) {
		m.Raft().ReadStale(func(sm *fsm.Machine, at time.Duration) {
			_, ok = sm.Get(testKey(name), at)
		})
		return ok
	}
	l, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Members[(l.Index+1)%len(c.Members)]
	if _, err := os.Stat(filepath.Join(f.Dir, "log")); err != nil {
		t.Fatalf("follower has no walstore directory: %v", err)
	}
	write("before")
	if err := c.Stop(f.Index); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		write(fmt.Sprint("during-", i))
	}
	if err := l.Raft().Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	write("after-snapshot")
	if err := c.Restart(f.Index); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the follower to install the snapshot and catch up", func() bool {
		return has(f, "after-snapshot") && has(f, "during-99") && has(f, "before")
	})
	if idx := f.Raft().Raft().Stats()["last_snapshot_index"]; idx == "0" {
		t.Fatal("follower caught up without a snapshot; the test did not exercise an install")
	}
	write("after-install")
	testutil.WaitFor(t, 20*time.Second, "the follower to apply after the install", func() bool { return has(f, "after-install") })
	if err := c.Stop(f.Index); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(f.Index); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the restarted follower to recover", func() bool {
		return has(f, "after-install") && has(f, "during-50")
	})
}

func testKey(name string) lease.Key {
	return lease.Key{Namespace: "application-leadership", Group: "model", Name: name}
}
