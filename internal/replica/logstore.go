package replica

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/replica/boltstore"
	"github.com/leasehold/leasehold/internal/replica/walstore"
)

// Log store names (Config.LogStore).
const (
	LogStoreWAL  = "wal"  // raftnode/walstore in DataDir/log: one fsync per batch
	LogStoreBolt = "bolt" // the log in DataDir/raft.db beside the stable store
)

// walDir is where walstore keeps its segments (not "wal": that name is
// raft-wal's, which refuseOldWAL looks for).
const walDir = "log"

// keyCurrentTerm is hashicorp/raft's stable-store key for the current term.
var keyCurrentTerm = []byte("CurrentTerm")

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
		if last == 0 {
			// No log anywhere. That is a new server only if it has never
			// voted nor taken a snapshot; otherwise its walstore log was lost,
			// and starting with an empty one would forget entries it
			// acknowledged (they counted towards commits).
			term, err := bolt.GetUint64(keyCurrentTerm)
			if err != nil && !errors.Is(err, boltstore.ErrKeyNotFound) {
				return nil, nil, err
			}
			if term > 0 || nonEmptyDir(filepath.Join(cfg.DataDir, "snapshots")) {
				return nil, nil, fmt.Errorf("raftnode: %s has a stable store at term %d (or snapshots) but no log (%s is missing): the log was lost or removed; rebuild this server from an empty data directory (remove it from the cluster, clear the directory, add it back)", cfg.DataDir, term, dir)
			}
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
