package raftnode

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/raftnode/boltstore"
	"github.com/leasehold/leasehold/raftnode/walstore"
)

// Log store names (Config.LogStore).
const (
	LogStoreWAL  = "wal"  // raftnode/walstore in DataDir/log: one fsync per batch
	LogStoreBolt = "bolt" // the log in DataDir/raft.db beside the stable store
)

// walDir is where walstore keeps its segments (not "wal": that name is
// raft-wal's, which refuseOldWAL looks for).
const walDir = "log"

// openLogStore picks the log store: a data directory keeps the store it was
// created with (a walstore directory, or a raft.db that holds entries), and a
// new one takes cfg.LogStore. The stable store (term, vote) is always the
// bbolt file.
func openLogStore(cfg Config, bolt *boltstore.Store) (raft.LogStore, *walstore.Store, error) {
	dir := filepath.Join(cfg.DataDir, walDir)
	_, err := os.Stat(dir)
	useWAL := err == nil
	if !useWAL {
		last, err := bolt.LastIndex()
		if err != nil {
			return nil, nil, err
		}
		useWAL = last == 0 && cfg.LogStore == LogStoreWAL
	}
	if !useWAL {
		return bolt, nil, nil
	}
	w, err := walstore.Open(dir, walstore.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("raftnode: open log: %w", err)
	}
	return w, w, nil
}
