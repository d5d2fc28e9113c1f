package replica

import (
	"os"
	"path/filepath"
	"testing"
)

// A data directory written by a raft-wal build must not start on an empty
// log and stable store (it would forget its term and vote).
func TestRefuseOldWAL(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "raft.db")
	if err := refuseOldWAL(dir, db); err != nil {
		t.Fatalf("fresh dir refused: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := refuseOldWAL(dir, db); err != nil {
		t.Fatalf("empty wal dir refused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wal", "00000000000000000001-0000000000000001.wal"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := refuseOldWAL(dir, db); err == nil {
		t.Fatal("dir with a raft-wal log and no raft.db accepted")
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := refuseOldWAL(dir, db); err != nil {
		t.Fatalf("dir with raft.db refused: %v", err)
	}
}
