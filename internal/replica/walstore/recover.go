package walstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/replica/boltstore"
)

// maxRecord bounds a record's length field, so a torn or corrupt length is
// recognised instead of read as a huge allocation.
const maxRecord = 1 << 30

func appendRecord(b, payload []byte) []byte {
	var h [headerLen]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, h[:4])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:], crc)
	return append(append(b, h[:]...), payload...)
}

// parseRecord reads the record at the start of b: its payload and total
// length, or n == 0 when b does not start with a whole, valid record.
func parseRecord(b []byte) (payload []byte, n int) {
	if len(b) < headerLen {
		return nil, 0
	}
	l := binary.LittleEndian.Uint32(b[:4])
	// A zero length is never written; it is what a zero-filled tail reads as.
	if l == 0 || l > maxRecord || uint64(len(b)-headerLen) < uint64(l) {
		return nil, 0
	}
	crc := crc32.Update(0, castagnoli, b[:4])
	crc = crc32.Update(crc, castagnoli, b[headerLen:headerLen+l])
	if crc != binary.LittleEndian.Uint32(b[4:8]) {
		return nil, 0
	}
	return b[headerLen : headerLen+l], headerLen + int(l)
}

// recover opens every segment, checks it record by record and rebuilds the
// in-memory offsets. Only the last segment may end in a torn record; it is
// cut there.
func (s *Store) recover() error {
	firsts, err := segmentFiles(s.dir)
	if err != nil {
		return err
	}
	head, err := readHead(s.dir)
	if err != nil {
		return err
	}
	for i, first := range firsts {
		isLast := i == len(firsts)-1
		f, err := os.OpenFile(s.segPath(first), os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		sg := &segment{first: first, f: f}
		s.segs = append(s.segs, sg)
		if i > 0 {
			if prev := s.segs[i-1]; len(prev.offs) == 0 || prev.last()+1 != first {
				return fmt.Errorf("%w: segment %s does not follow the one before it", ErrCorrupt, f.Name())
			}
		}
		torn, err := scan(sg)
		if err != nil {
			return err
		}
		if torn && !isLast {
			return fmt.Errorf("%w: bad record inside %s, which is not the last segment", ErrCorrupt, f.Name())
		}
		if torn {
			if err := f.Truncate(sg.size); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
		}
	}
	// An empty last segment is one whose creation, or whose first write, a
	// crash interrupted (or a tail truncation emptied): drop it.
	if n := len(s.segs); n > 0 && len(s.segs[n-1].offs) == 0 {
		sg := s.segs[n-1]
		sg.f.Close()
		s.segs = s.segs[:n-1]
		if err := os.Remove(sg.f.Name()); err != nil {
			return err
		}
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
	if len(s.segs) == 0 {
		return s.removeHead()
	}
	s.first, s.last = s.segs[0].first, s.segs[len(s.segs)-1].last()
	switch {
	case head > s.last:
		// A deletion of the whole log was cut short: finish it.
		return s.deleteAll()
	case head > s.first:
		s.first = head
	}
	return nil
}

func (s *Store) removeHead() error {
	if err := os.Remove(filepath.Join(s.dir, headFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return syncDir(s.dir)
}

// scan reads sg's records in order, filling offs and size; torn reports that
// bytes after the last valid record were left over.
func scan(sg *segment) (torn bool, err error) {
	data, err := io.ReadAll(io.NewSectionReader(sg.f, 0, 1<<62))
	if err != nil {
		return false, err
	}
	var off int
	for off < len(data) {
		payload, n := parseRecord(data[off:])
		if n == 0 {
			return true, nil
		}
		var l raft.Log
		want := sg.first + uint64(len(sg.offs))
		if err := boltstore.DecodeLog(payload, &l); err != nil || l.Index != want {
			// A checksummed record that does not decode, or holds the wrong
			// index, was written that way: not a torn write.
			return false, fmt.Errorf("%w: %s at offset %d holds index %d, want %d (%v)", ErrCorrupt, sg.f.Name(), off, l.Index, want, err)
		}
		sg.offs = append(sg.offs, int64(off))
		off += n
		sg.size = int64(off)
	}
	return false, nil
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
