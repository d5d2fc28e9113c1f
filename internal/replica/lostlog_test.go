package replica

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// A server whose raft.db was lost but whose snapshots remain must not start:
// it would come back at term 0 with no vote record and could vote twice in
// one term.
func TestRefuseSnapshotsWithoutLog(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Node, error) { return openSingle(t, dir) }
	n, err := open()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leader", func() bool { _, ok := n.Now(); return ok })
	propose(t, n, claimCmd("h", 60e9))
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}
	n, err = open()
	if err == nil {
		n.Close()
		t.Fatal("started as a fresh voter with snapshots and no raft.db")
	}
	if !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("error does not say what is missing: %v", err)
	}
}

// A server whose walstore log (DataDir/log) was lost while raft.db (term and
// vote) remains must not start with an empty log either: the entries it
// acknowledged counted towards commits, and a server that forgot them can
// help elect a leader that lacks them.
func TestRefuseStableStoreWithoutWALLog(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Node, error) { return openSingle(t, dir) }
	n, err := open()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leader", func() bool { _, ok := n.Now(); return ok })
	propose(t, n, claimCmd("h", 60e9))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, walDir)); err != nil {
		t.Fatal(err)
	}
	n, err = open()
	if err == nil {
		n.Close()
		t.Fatal("started with an empty log beside a stable store that has voted")
	}
	if !strings.Contains(err.Error(), walDir) {
		t.Fatalf("error does not say what is missing: %v", err)
	}
}

// openSingle opens a one-voter node in dir on an in-memory transport.
func openSingle(t *testing.T, dir string) (*Node, error) {
	addr, tr := raft.NewInmemTransport("")
	t.Cleanup(func() { tr.Close() })
	cfg := Config{ID: "a", DataDir: dir, RaftAddr: string(addr), Transport: tr, Clock: newFakeClock(),
		Bootstrap: []Peer{{ID: "a", RaftAddr: string(addr)}}}
	fastConfig(&cfg)
	return Open(cfg)
}
