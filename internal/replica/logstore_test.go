package replica

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/replica/boltstore"
	"github.com/leasehold/leasehold/internal/replica/walstore"
)

// A new data directory takes Config.LogStore; one that already holds a log
// keeps the store it was created with, whatever the config says, so an
// upgrade never starts a node on an empty log beside its old entries.
func TestLogStoreChoice(t *testing.T) {
	// open opens dir's stores, reports the log store's type and closes them.
	open := func(t *testing.T, dir, want string) raft.LogStore {
		t.Helper()
		b, err := boltstore.Open(filepath.Join(dir, "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		logs, w, err := openLogStore(Config{DataDir: dir, LogStore: want}, b)
		if err != nil {
			t.Fatal(err)
		}
		if w != nil {
			w.Close()
		}
		return logs
	}
	t.Run("new dir takes the config", func(t *testing.T) {
		if _, ok := open(t, t.TempDir(), LogStoreWAL).(*walstore.Store); !ok {
			t.Fatal("new dir with LogStore=wal did not get walstore")
		}
		if _, ok := open(t, t.TempDir(), LogStoreBolt).(*boltstore.Store); !ok {
			t.Fatal("new dir with LogStore=bolt did not get boltstore")
		}
	})
	t.Run("bolt dir with entries stays bolt", func(t *testing.T) {
		dir := t.TempDir()
		b, err := boltstore.Open(filepath.Join(dir, "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.StoreLog(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand}); err != nil {
			t.Fatal(err)
		}
		b.Close()
		logs := open(t, dir, LogStoreWAL)
		if _, ok := logs.(*boltstore.Store); !ok {
			t.Fatalf("bolt dir with entries got %T", logs)
		}
		if _, err := os.Stat(filepath.Join(dir, walDir)); err == nil {
			t.Fatal("a walstore directory was created beside the bolt log")
		}
	})
	t.Run("wal dir stays wal", func(t *testing.T) {
		dir := t.TempDir()
		if _, ok := open(t, dir, LogStoreWAL).(*walstore.Store); !ok {
			t.Fatal("no walstore")
		}
		if _, ok := open(t, dir, LogStoreBolt).(*walstore.Store); !ok {
			t.Fatal("wal dir reopened with LogStore=bolt lost its walstore")
		}
	})
}
