package devcluster

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// TestServersWithDifferentLimitFlagsAgree is issue 12's first scenario on
// real servers: server 1 runs with --max-duration 10m, servers 2 and 3 with
// the default 5m, and 7-minute claims go through server 1 while it leads.
// Whatever the outcome of the claims, every replica at the same applied
// index must hold exactly the same state (compared as snapshot bytes).
func TestServersWithDifferentLimitFlagsAgree(t *testing.T) {
	c, err := Start(context.Background(), Options{Dir: t.TempDir(), Raft: func(cfg *replica.Config) {
		fastRaft(cfg)
		cfg.Limits = lease.DefaultLimits
		if cfg.ID == "node1" {
			cfg.Limits.MaxDuration = 10 * time.Minute
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n1 := c.Members[0]
	// Make server 1 the leader, as in the issue.
	for {
		l, err := c.WaitLeader(ctx)
		if err != nil {
			t.Fatal("no leader:", err)
		}
		if l == n1 {
			break
		}
		f := l.Raft().Raft().LeadershipTransferToServer(raft.ServerID(n1.ID), raft.ServerAddress(n1.RaftAddr))
		if err := f.Error(); err != nil {
			t.Logf("transfer to %s: %v (retrying)", n1.ID, err)
		}
		waitFor(t, 10*time.Second, "leadership to move", func() bool { return c.Leader() != l })
	}
	var granted int
	for i := 1; i <= 6; i++ {
		res, err := n1.Node().Write(ctx, []lease.Command{{Op: lease.OpClaim, Key: key(fmt.Sprintf("k%d", i)), Holder: "h", Duration: 7 * time.Minute}})
		if err != nil {
			t.Fatalf("claim k%d through %s: %v", i, n1.ID, err)
		}
		if res[0].Code == lease.CodeOK {
			granted++
		}
	}
	t.Logf("%d of 6 seven-minute claims granted", granted)

	// Sample every replica's state until each follower has been seen at an
	// index server 1 was also seen at (after the claims), comparing the
	// bytes of every index seen on more than one replica.
	seen := make([]map[uint64][]byte, len(c.Members))
	for i := range seen {
		seen[i] = map[uint64][]byte{}
	}
	var last uint64
	n1.Raft().ReadStale(func(m *fsm.Machine, _ time.Duration) { last = m.Index() })
	waitFor(t, 15*time.Second, "every replica to be seen at an index server 1 was seen at", func() bool {
		for i, m := range c.Members {
			m.Raft().ReadStale(func(sm *fsm.Machine, _ time.Duration) {
				if sm.Index() >= last {
					seen[i][sm.Index()] = sm.AppendSnapshot(nil)
				}
			})
		}
		for i := 1; i < len(seen); i++ {
			common := false
			for idx := range seen[i] {
				if _, ok := seen[0][idx]; ok {
					common = true
				}
			}
			if !common {
				return false
			}
		}
		return true
	})
	compared := 0
	for idx, want := range seen[0] {
		for i := 1; i < len(seen); i++ {
			got, ok := seen[i][idx]
			if !ok {
				continue
			}
			compared++
			if !bytes.Equal(got, want) {
				var a, b []lease.Info
				fa, fb := fsm.New(), fsm.New()
				_ = fa.Restore(want)
				_ = fb.Restore(got)
				a, b = fa.List("", "", lease.Key{}, 0, 0), fb.List("", "", lease.Key{}, 0, 0)
				t.Fatalf("at applied index %d %s and %s differ:\n%s holds %d leases %v\n%s holds %d leases %v",
					idx, c.Members[0].ID, c.Members[i].ID, c.Members[0].ID, len(a), a, c.Members[i].ID, len(b), b)
			}
		}
	}
	t.Logf("compared %d (replica, index) pairs", compared)
	// The first leader's flags became the initial settings, written once
	// (a compare-and-set on version 0), however leadership moved after.
	for _, m := range c.Members {
		var version uint64
		var limits lease.Limits
		m.Raft().ReadStale(func(sm *fsm.Machine, _ time.Duration) { version, limits = sm.SettingsVersion(), sm.Limits() })
		if version != 1 {
			t.Errorf("%s: settings version %d, want 1 (initial settings written once)", m.ID, version)
		}
		t.Logf("%s: limits %v at settings version %d", m.ID, limits, version)
	}
}
