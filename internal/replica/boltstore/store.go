package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")
)

// ErrKeyNotFound is returned by Get and GetUint64 for a key never set. Its
// text is what hashicorp/raft compares against (err.Error() == "not found"),
// as with raft-boltdb's error of the same name.
var ErrKeyNotFound = errors.New("not found")

// Store is a raft.LogStore and raft.StableStore in one bbolt file. It is safe
// for concurrent use.
type Store struct {
	db *bolt.DB

	// writeMu orders a write transaction with the cache update after it, so
	// concurrent writers cannot leave first/last behind the file.
	writeMu sync.Mutex
	first   atomic.Uint64
	last    atomic.Uint64
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens (creating if needed) the store at path. It fails rather than
// waiting if another process holds the file for longer than a few seconds.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        5 * time.Second,
		NoSync:         false,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		s.setBounds(bounds(tx.Bucket(bucketLogs)))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file. The store must not be used afterwards.
func (s *Store) Close() error { return s.db.Close() }

// bounds reads the first and last index in the bucket (0, 0 when empty).
func bounds(b *bolt.Bucket) (first, last uint64) {
	c := b.Cursor()
	if k, _ := c.First(); k != nil {
		first = keyIndex(k)
	}
	if k, _ := c.Last(); k != nil {
		last = keyIndex(k)
	}
	return first, last
}

func (s *Store) setBounds(first, last uint64) {
	s.first.Store(first)
	s.last.Store(last)
}

// FirstIndex returns the first stored index, 0 when there are none.
func (s *Store) FirstIndex() (uint64, error) { return s.first.Load(), nil }

// LastIndex returns the last stored index, 0 when there are none.
func (s *Store) LastIndex() (uint64, error) { return s.last.Load(), nil }

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(v, log); err != nil {
			return fmt.Errorf("boltstore: index %d: %w", index, err)
		}
		if log.Index != index {
			return fmt.Errorf("boltstore: index %d holds entry %d: %w", index, log.Index, errCorrupt)
		}
		return nil
	})
}

// StoreLog stores one entry.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores a batch of entries in one transaction (one fsync).
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode before taking the write lock: only the commit is serialised.
	vals := make([][]byte, len(logs))
	lo, hi := logs[0].Index, logs[0].Index
	for i, l := range logs {
		v, err := encodeLog(l)
		if err != nil {
			return err
		}
		vals[i] = v
		lo, hi = min(lo, l.Index), max(hi, l.Index)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		for i, l := range logs {
			if err := b.Put(indexKey(l.Index), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: store logs %d-%d: %w", lo, hi, err)
	}
	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange deletes the entries from min to max inclusive: the head after a
// snapshot, or the tail when Raft drops conflicting entries.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var first, last uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		c := b.Cursor()
		// Re-seek after each delete: a bbolt cursor's position after Delete
		// is not a reliable place to call Next from.
		for k, _ := c.Seek(indexKey(min)); k != nil && keyIndex(k) <= max; k, _ = c.Seek(indexKey(min)) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		// Published only after the commit succeeds.
		first, last = bounds(b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: delete logs %d-%d: %w", min, max, err)
	}
	s.setBounds(first, last)
	return nil
}

// Set stores a stable key.
func (s *Store) Set(key, val []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
}

// Get returns a stable key's value, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(key)
		if v == nil {
			return ErrKeyNotFound
		}
		out = bytes.Clone(v)
		if out == nil {
			out = []byte{}
		}
		return nil
	})
	return out, err
}

// SetUint64 stores a stable key holding a uint64.
func (s *Store) SetUint64(key []byte, val uint64) error { return s.Set(key, indexKey(val)) }

// GetUint64 returns a stable uint64, or ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("boltstore: stable key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// indexKey is the big-endian form of an index, so bbolt's byte order is
// index order.
func indexKey(i uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, i)
	return k
}

func keyIndex(k []byte) uint64 { return binary.BigEndian.Uint64(k) }
