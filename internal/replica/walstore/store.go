package walstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/replica/boltstore"
)

// DefaultSegmentBytes is the size at which a segment is rolled: large enough
// that rolls are rare, small enough that a head compaction frees space soon.
const DefaultSegmentBytes = 32 << 20

const (
	headerLen = 8
	segSuffix = ".seg"
	headFile  = "head"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a log that cannot be read back as written.
var ErrCorrupt = errors.New("walstore: corrupt log")

// Options tune a Store; zero values take the defaults.
type Options struct {
	SegmentBytes int64
}

// Store is a raft.LogStore in a directory of append-only segments. It is
// safe for concurrent use: reads run alongside an append's write and fsync,
// which are published only once durable.
type Store struct {
	dir  string
	opts Options

	// writeMu serialises mutations (StoreLogs, DeleteRange) from validation
	// to publication; mu guards the published view that readers use.
	writeMu sync.Mutex
	mu      sync.RWMutex
	segs    []*segment // ordered by first index
	first   uint64     // first readable index (0: empty)
	last    uint64     // last index (0: empty)
	failed  error      // set when a failed write left the file state unknown
}

type segment struct {
	first uint64
	f     *os.File
	offs  []int64 // offs[i] is where entry first+i starts
	size  int64   // bytes of valid records
}

func (s *segment) last() uint64 { return s.first + uint64(len(s.offs)) - 1 }

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// Open opens (creating if needed) the store in dir, recovering from a torn
// tail left by a crash.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// IsMonotonic tells Raft the log never has gaps (see the package doc).
func (s *Store) IsMonotonic() bool { return true }

// Close closes the segment files.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.closeFiles()
	s.segs = nil
	s.failed = errors.New("walstore: closed")
	return err
}

func (s *Store) closeFiles() error {
	var err error
	for _, sg := range s.segs {
		err = errors.Join(err, sg.f.Close())
	}
	return err
}

// FirstIndex returns the first index, 0 when empty.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

// LastIndex returns the last index, 0 when empty.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// GetLog reads the entry at index, or returns raft.ErrLogNotFound.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.first == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].first > index }) - 1
	sg := s.segs[i]
	k := index - sg.first
	start, end := sg.offs[k], sg.size
	if k+1 < uint64(len(sg.offs)) {
		end = sg.offs[k+1]
	}
	buf := make([]byte, end-start)
	if _, err := sg.f.ReadAt(buf, start); err != nil {
		return fmt.Errorf("walstore: read index %d: %w", index, err)
	}
	payload, n := parseRecord(buf)
	if n != len(buf) {
		return fmt.Errorf("%w: index %d in %s fails its checksum", ErrCorrupt, index, sg.f.Name())
	}
	if err := boltstore.DecodeLog(payload, log); err != nil {
		return fmt.Errorf("walstore: index %d: %w", index, err)
	}
	if log.Index != index {
		return fmt.Errorf("%w: index %d holds entry %d", ErrCorrupt, index, log.Index)
	}
	return nil
}

// StoreLog stores one entry.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends consecutive entries that follow the last one (any index
// when the store is empty; an index past a gap replaces the whole log) with
// one write and one fdatasync.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode before taking the lock: only the write and fsync are serialised.
	buf := make([]byte, 0, 256*len(logs))
	rel := make([]int64, len(logs)) // record offsets within buf
	for i, l := range logs {
		if i > 0 && l.Index != logs[i-1].Index+1 {
			return fmt.Errorf("walstore: entries %d and %d are not consecutive", logs[i-1].Index, l.Index)
		}
		p, err := boltstore.EncodeLog(l)
		if err != nil {
			return err
		}
		rel[i] = int64(len(buf))
		buf = appendRecord(buf, p)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	switch {
	case s.last != 0 && logs[0].Index <= s.last:
		return fmt.Errorf("walstore: entry %d overlaps the log, which ends at %d (delete the tail first)", logs[0].Index, s.last)
	case s.last != 0 && logs[0].Index > s.last+1:
		// Raft appends past a gap only after installing a snapshot that
		// covers it, when it sees the store as not monotonic (a wrapper that
		// hides IsMonotonic) and so compacted instead of deleting the log.
		// Every entry before the gap is covered by that snapshot: start over
		// at the new index, as Raft does with a monotonic store.
		if err := s.deleteAll(); err != nil {
			return err
		}
	}
	tail, err := s.tailFor(logs[0].Index)
	if err != nil {
		return err
	}
	base := tail.size
	if _, err := tail.f.WriteAt(buf, base); err != nil {
		return s.undoAppend(tail, base, fmt.Errorf("walstore: write entries %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	if err := fdatasync(tail.f); err != nil {
		return s.undoAppend(tail, base, fmt.Errorf("walstore: sync entries %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	s.mu.Lock()
	for _, r := range rel {
		tail.offs = append(tail.offs, base+r)
	}
	tail.size = base + int64(len(buf))
	if s.first == 0 {
		s.first = logs[0].Index
	}
	s.last = logs[len(logs)-1].Index
	s.mu.Unlock()
	return nil
}

// undoAppend cuts a failed append back off the file. If even that fails,
// what the file holds is unknown, so the store refuses every later write
// (a restart recovers whatever valid records are there).
func (s *Store) undoAppend(tail *segment, size int64, err error) error {
	if terr := tail.f.Truncate(size); terr != nil {
		s.failed = fmt.Errorf("walstore: log state unknown after a failed write (%v); restart to recover: %w", terr, err)
		return s.failed
	}
	return err
}

// tailFor returns the segment the entry at index is appended to, creating a
// new one when there is none or the last one is full. Called under writeMu.
func (s *Store) tailFor(index uint64) (*segment, error) {
	if n := len(s.segs); n > 0 && s.segs[n-1].size < s.opts.SegmentBytes && (len(s.segs[n-1].offs) > 0 || s.segs[n-1].first == index) {
		return s.segs[n-1], nil
	}
	f, err := os.OpenFile(s.segPath(index), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("walstore: create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return nil, err
	}
	sg := &segment{first: index, f: f}
	s.mu.Lock()
	s.segs = append(s.segs, sg)
	s.mu.Unlock()
	return sg, nil
}

// DeleteRange deletes entries min to max inclusive. Raft deletes only a head
// (after a snapshot), a tail (conflicting entries), or everything.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	if s.first == 0 || max < s.first || min > s.last {
		return nil
	}
	min, max = maxU(min, s.first), minU(max, s.last)
	switch {
	case min == s.first && max == s.last:
		return s.deleteAll()
	case min == s.first:
		return s.deleteHead(max)
	case max == s.last:
		return s.truncateTail(min)
	default:
		return fmt.Errorf("walstore: cannot delete %d-%d from the middle of %d-%d", min, max, s.first, s.last)
	}
}

// deleteAll removes every segment. A head past the last index goes first, so
// a crash part-way reopens as an empty log, never a shortened one with a gap.
func (s *Store) deleteAll() error {
	if err := s.writeHead(s.last + 1); err != nil {
		return err
	}
	s.mu.Lock()
	segs := s.segs
	s.segs, s.first, s.last = nil, 0, 0
	s.mu.Unlock()
	for i := len(segs) - 1; i >= 0; i-- {
		segs[i].f.Close()
		if err := os.Remove(segs[i].f.Name()); err != nil && !os.IsNotExist(err) {
			return s.fail(fmt.Errorf("walstore: remove segment: %w", err))
		}
	}
	if err := os.Remove(filepath.Join(s.dir, headFile)); err != nil && !os.IsNotExist(err) {
		return s.fail(err)
	}
	if err := syncDir(s.dir); err != nil {
		return s.fail(err)
	}
	return nil
}

// deleteHead makes max+1 the first index and removes the segments holding
// only earlier entries, oldest first.
func (s *Store) deleteHead(max uint64) error {
	if err := s.writeHead(max + 1); err != nil {
		return err
	}
	s.mu.Lock()
	var gone []*segment
	for len(s.segs) > 1 && s.segs[1].first <= max+1 {
		gone = append(gone, s.segs[0])
		s.segs = s.segs[1:]
	}
	s.first = max + 1
	s.mu.Unlock()
	for _, sg := range gone {
		sg.f.Close()
		if err := os.Remove(sg.f.Name()); err != nil && !os.IsNotExist(err) {
			return s.fail(fmt.Errorf("walstore: remove segment: %w", err))
		}
	}
	if len(gone) > 0 {
		if err := syncDir(s.dir); err != nil {
			return s.fail(err)
		}
	}
	return nil
}

// truncateTail removes entries from min on: later segments first (from the
// last backwards), then the part of the segment holding min.
func (s *Store) truncateTail(min uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := false
	for n := len(s.segs); n > 1 && s.segs[n-1].first >= min; n = len(s.segs) {
		sg := s.segs[n-1]
		sg.f.Close()
		if err := os.Remove(sg.f.Name()); err != nil && !os.IsNotExist(err) {
			return s.fail(fmt.Errorf("walstore: remove segment: %w", err))
		}
		s.segs = s.segs[:n-1]
		removed = true
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			return s.fail(err)
		}
	}
	sg := s.segs[len(s.segs)-1]
	k := min - sg.first
	if k == uint64(len(sg.offs)) {
		// The cut fell on a segment boundary: removing later segments did it.
		s.last = min - 1
		return nil
	}
	size := sg.offs[k]
	if err := sg.f.Truncate(size); err != nil {
		return s.fail(fmt.Errorf("walstore: truncate: %w", err))
	}
	if err := sg.f.Sync(); err != nil {
		return s.fail(fmt.Errorf("walstore: sync truncate: %w", err))
	}
	sg.offs, sg.size = sg.offs[:k], size
	s.last = min - 1
	return nil
}

// fail records that the files may no longer match the published view.
func (s *Store) fail(err error) error {
	s.failed = fmt.Errorf("walstore: log state unknown after a failed delete; restart to recover: %w", err)
	return s.failed
}

func (s *Store) segPath(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", first, segSuffix))
}

// writeHead durably replaces the head file with first.
func (s *Store) writeHead(first uint64) error {
	b := binary.LittleEndian.AppendUint64(nil, first)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := filepath.Join(s.dir, headFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, headFile))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("walstore: write head: %w", err)
	}
	return nil
}

// readHead returns the recorded first index, 0 when there is none.
func readHead(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, headFile))
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		// The head is replaced by rename, so it is never torn.
		return 0, fmt.Errorf("%w: bad head file", ErrCorrupt)
	}
	return binary.LittleEndian.Uint64(b[:8]), nil
}

// segmentFiles lists the segments in dir by first index.
func segmentFiles(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var firsts []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(name, 10, 64)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("%w: unexpected segment file %s", ErrCorrupt, e.Name())
		}
		firsts = append(firsts, v)
	}
	slices.Sort(firsts)
	return firsts, nil
}

func minU(a, b uint64) uint64 { return min(a, b) }
func maxU(a, b uint64) uint64 { return max(a, b) }
