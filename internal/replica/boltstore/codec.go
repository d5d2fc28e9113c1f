package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// codecV1 is the first entry encoding:
//
//	version byte (1)
//	uvarint Index, uvarint Term, byte Type
//	uvarint len + Data, uvarint len + Extensions
//	uvarint len + AppendedAt (time.MarshalBinary; length 0 = zero time)
//
// Index is stored although it is also the key, so a value found under the
// wrong key is reported as corruption rather than returned.
const codecV1 = 1

var errCorrupt = errors.New("boltstore: corrupt log entry")

func encodeLog(l *raft.Log) ([]byte, error) {
	var at []byte
	if !l.AppendedAt.IsZero() {
		var err error
		if at, err = l.AppendedAt.MarshalBinary(); err != nil {
			// Zone offsets that are not whole minutes cannot be marshalled;
			// the instant is what matters, so keep it in UTC.
			if at, err = l.AppendedAt.UTC().MarshalBinary(); err != nil {
				return nil, fmt.Errorf("boltstore: encode AppendedAt: %w", err)
			}
		}
	}
	n := 1 + 3*binary.MaxVarintLen64 + 1 + len(l.Data) + len(l.Extensions) + len(at) + 2*binary.MaxVarintLen64
	b := make([]byte, 0, n)
	b = append(b, codecV1)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = appendBytes(b, l.Data)
	b = appendBytes(b, l.Extensions)
	b = appendBytes(b, at)
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decodeLog fills l from b. The slices it sets never alias b (bbolt values are
// only valid inside their transaction).
func decodeLog(b []byte, l *raft.Log) error {
	if len(b) == 0 {
		return errCorrupt
	}
	if b[0] != codecV1 {
		return fmt.Errorf("boltstore: unknown log encoding version %d", b[0])
	}
	d := decoder{b: b[1:]}
	index := d.uvarint()
	term := d.uvarint()
	typ := d.byte()
	data := d.bytes()
	ext := d.bytes()
	at := d.bytes()
	if d.bad || len(d.b) != 0 {
		return errCorrupt
	}
	var appended time.Time
	if len(at) > 0 {
		if err := appended.UnmarshalBinary(at); err != nil {
			return fmt.Errorf("%w: AppendedAt: %v", errCorrupt, err)
		}
	}
	// One copy holds both byte fields; capacity-limited so an append to one
	// cannot overwrite the other.
	buf := make([]byte, len(data)+len(ext))
	copy(buf, data)
	copy(buf[len(data):], ext)
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ), AppendedAt: appended}
	if len(data) > 0 {
		l.Data = buf[:len(data):len(data)]
	}
	if len(ext) > 0 {
		l.Extensions = buf[len(data):]
	}
	return nil
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// EncodeLog is the entry encoding shared with raftnode/walstore, so both
// stores keep one format for a raft.Log.
func EncodeLog(l *raft.Log) ([]byte, error) { return encodeLog(l) }

// DecodeLog decodes what EncodeLog produced; the slices it sets never alias b.
func DecodeLog(b []byte, l *raft.Log) error { return decodeLog(b, l) }
