package server_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/server"
	"github.com/leasehold/leasehold/lease"
)

func snapshotEarly(c *server.Config) {
	c.Raft.SnapshotThreshold = 8
	c.Raft.SnapshotInterval = 20 * time.Millisecond
	c.Raft.TrailingLogs = 4
}

// TestWatchResumeBeforeRestartSnapshotIsCompacted is issue 12 hole 6: a
// restarted server's history starts after its snapshot, so a watch resuming
// from before it must be told (compacted, with the oldest index it has), not
// replay part of what happened.
func TestWatchResumeBeforeRestartSnapshotIsCompacted(t *testing.T) {
	dir := t.TempDir()
	s := startOne(t, "w1", dir, snapshotEarly)
	bootstrapAlone(t, s)
	cl := newClient(t, client.Config{}, s.ClientAddr())
	for i := range 20 {
		if _, err := cl.Claim(ctxT(t), mustKey(fmt.Sprintf("app/w/k%d", i)), "h", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a snapshot", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "w1", "snapshots", "*", "meta.json"))
		return len(m) > 0
	})
	s.Close()
	s = startOne(t, "w1", dir, snapshotEarly)
	defer s.Close()
	waitFor(t, 10*time.Second, "restarted server leads", func() bool { _, ok := s.Raft.Now(); return ok })
	cl2 := newClient(t, client.Config{}, s.ClientAddr())
	_, err := cl2.Watch(ctxT(t), client.WatchOptions{Namespace: "app", StartIndex: 1})
	var le *lease.Error
	if !errors.As(err, &le) || !errors.Is(err, lease.ErrCompacted) || le.Index <= 1 {
		t.Fatalf("resume from index 1 after a restart from a snapshot: %v", err)
	}
	w, err := cl2.Watch(ctxT(t), client.WatchOptions{Namespace: "app", StartIndex: le.Index})
	if err != nil {
		t.Fatalf("watch from the oldest index kept: %v", err)
	}
	w.Close()
}

// TestSnapshotInstallEndsWatchers: installing a snapshot jumps the state
// past events no watcher will see; the server's watchers end with compacted
// so their callers re-read.
func TestSnapshotInstallEndsWatchers(t *testing.T) {
	dir := t.TempDir()
	s := startOne(t, "r1", dir, nil)
	defer s.Close()
	bootstrapAlone(t, s)
	cl := newClient(t, client.Config{}, s.ClientAddr())
	if _, err := cl.Claim(ctxT(t), mustKey("app/r/one"), "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	data, _, err := cl.SaveSnapshot(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	w, err := cl.Watch(ctxT(t), client.WatchOptions{Namespace: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := s.Raft.RestoreSnapshot(ctxT(t), data); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Claim(ctxT(t), mustKey("app/r/two"), "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	evs, err := w.Next()
	if !errors.Is(err, lease.ErrCompacted) {
		t.Fatalf("watcher across a snapshot install: %+v %v", evs, err)
	}
}
