package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/server"
	"github.com/leasehold/leasehold/lease"
)

// startOne starts an empty server on free loopback ports.
func startOne(t *testing.T, id, dir string, mod func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{Raft: replica.Config{ID: id, DataDir: filepath.Join(dir, id), RaftAddr: "127.0.0.1:0",
		ClientAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}}
	fastRaft(&cfg.Raft)
	if mod != nil {
		mod(&cfg)
	}
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bootstrapAlone(t *testing.T, s *server.Server) {
	t.Helper()
	if err := s.Raft.Bootstrap([]replica.Peer{{ID: s.Raft.ID(), RaftAddr: s.Raft.RaftAddr()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "single server leads", func() bool { _, ok := s.Raft.Now(); return ok })
}

func TestGrowToThreeAndShrinkToOneUnderLoad(t *testing.T) {
	dir := t.TempDir()
	s1 := startOne(t, "m1", dir, nil)
	defer s1.Close()
	bootstrapAlone(t, s1)
	cl := newClient(t, client.Config{}, s1.ClientAddr())

	// Light write load: claims of new keys the whole time.
	var mu sync.Mutex
	granted := map[lease.Key]uint64{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000 && ctx.Err() == nil; i++ {
			k, _ := lease.ParseKey(fmt.Sprintf("app/load/k%d", i))
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, err := cl.Claim(cctx, k, "h", 5*time.Minute)
			cancel()
			if err == nil {
				mu.Lock()
				granted[k] = r.Token
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond) // pacing of the load, not a wait for a condition
		}
	}()

	grantedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(granted) }
	waitFor(t, 10*time.Second, "claims granted before the membership changes", func() bool { return grantedNow() >= 5 })

	var others []*server.Server
	for _, id := range []string{"m2", "m3"} {
		s := startOne(t, id, dir, nil)
		defer s.Close()
		others = append(others, s)
		if _, err := cl.AddMember(ctxT(t), client.MemberSpec{ID: id, RaftAddr: s.Raft.RaftAddr(), ClientAddr: s.ClientAddr(), HTTPAddr: s.HTTPAddr()}); err != nil {
			t.Fatalf("add %s: %v", id, err)
		}
	}
	ms, err := cl.ListMembers(ctxT(t))
	if err != nil || len(ms) != 3 {
		t.Fatalf("members after growing: %v %+v", err, ms)
	}
	for _, m := range ms {
		if !m.Voter || m.ClientAddr == "" {
			t.Errorf("member %+v is not a registered voter", m)
		}
	}
	for _, s := range others {
		waitFor(t, 10*time.Second, s.Raft.ID()+" catches up", func() bool {
			return s.Raft.State().AppliedIndex >= s1.Raft.State().CommitIndex-1
		})
	}
	for _, s := range others {
		if _, err := cl.RemoveMember(ctxT(t), s.Raft.ID()); err != nil {
			t.Fatalf("remove %s: %v", s.Raft.ID(), err)
		}
		s.Close()
	}
	afterChanges := grantedNow()
	waitFor(t, 10*time.Second, "claims granted after the membership changes", func() bool { return grantedNow() >= afterChanges+5 })
	stop()
	wg.Wait()
	ms, err = cl.ListMembers(ctxT(t))
	if err != nil || len(ms) != 1 || ms[0].ID != "m1" {
		t.Fatalf("members after shrinking: %v %+v", err, ms)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, tok := range granted {
		l, _, err := cl.Get(ctxT(t), k)
		if err != nil || l == nil || l.Holder != "h" || l.Token != tok {
			t.Fatalf("lease %v: %v %+v, want token %d", k, err, l, tok)
		}
	}
}

func TestSnapshotSaveAndRestoreIntoFreshCluster(t *testing.T) {
	dir := t.TempDir()
	a := startOne(t, "a1", dir, nil)
	defer a.Close()
	bootstrapAlone(t, a)
	ca := newClient(t, client.Config{}, a.ClientAddr())
	k1, _ := lease.ParseKey("app/lead/one")
	k2, _ := lease.ParseKey("app/lead/two")
	r1, err := ca.Claim(ctxT(t), k1, "alice", 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Claim(ctxT(t), k2, "bob", 4*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Pin(ctxT(t), k1, "machine-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SetSettings(ctxT(t), map[string]string{"max_duration": "4m"}); err != nil {
		t.Fatal(err)
	}
	data, _, err := ca.SaveSnapshot(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// The restored cluster's clock must continue from the snapshot's own
	// replicated time (a later clock reading on the source cluster may be
	// ahead of it: the clock runs between applied entries).
	saved := fsm.New()
	if err := saved.Restore(data); err != nil {
		t.Fatal(err)
	}
	savedAt := saved.Now()

	b := startOne(t, "b1", dir, nil)
	defer b.Close()
	bootstrapAlone(t, b)
	if err := b.Raft.RestoreSnapshot(ctxT(t), data); err != nil {
		t.Fatal(err)
	}
	cb := newClient(t, client.Config{}, b.ClientAddr())
	l, meta, err := cb.Get(ctxT(t), k1)
	if err != nil || l == nil || l.Holder != "alice" || l.Token != r1.Token || !l.Pinned {
		t.Fatalf("restored lease: %v %+v", err, l)
	}
	if meta.Now < savedAt {
		t.Fatalf("replicated time went back: %v < %v", meta.Now, savedAt)
	}
	if l2, _, err := cb.Get(ctxT(t), k2); err != nil || l2 == nil || l2.Holder != "bob" {
		t.Fatalf("restored k2: %v %+v", err, l2)
	}
	pins, _, err := cb.Pinned(ctxT(t))
	if err != nil || len(pins) != 1 {
		t.Fatalf("pins: %v %+v", err, pins)
	}
	// Fencing continues above the restored tokens; settings came along.
	r3, err := cb.Claim(ctxT(t), mustKey("app/lead/three"), "carol", time.Minute)
	if err != nil || r3.Token <= r1.Token {
		t.Fatalf("new claim after restore: %v token %d (restored %d)", err, r3.Token, r1.Token)
	}
	if b.Node.Limits().MaxDuration != 4*time.Minute {
		t.Fatalf("restored limits: %v", b.Node.Limits())
	}
}

func mustKey(s string) lease.Key {
	k, err := lease.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}
