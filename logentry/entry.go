package logentry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Version is the current encoding version, the first byte of every entry.
const Version = 1

// Kind is what an entry carries.
type Kind uint8

const (
	// KindBatch carries lease commands (zero commands is a clock tick).
	KindBatch Kind = 1
	// KindSettings carries a new set of cluster settings (opaque to this package).
	KindSettings Kind = 2
	// KindMember registers a server's addresses in the member directory
	// (Payload: see EncodeMember). The leader writes its own on election, so a
	// follower can always hint the leader's client address.
	KindMember Kind = 3
)

// Entry is one Raft log entry.
type Entry struct {
	Kind Kind
	// Time is the leader's replicated clock reading when it proposed the
	// entry; every command in it is applied at (at least) this time.
	Time     time.Duration
	Commands []lease.Command
	// Payload is the body of a KindSettings entry.
	Payload []byte
}

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("logentry: corrupt entry")

const sameGroupFlag = 0x80

// Append encodes e onto b.
func (e *Entry) Append(b []byte) []byte {
	b = append(b, Version, byte(e.Kind))
	b = binary.AppendVarint(b, int64(e.Time))
	if e.Kind == KindSettings || e.Kind == KindMember {
		b = binary.AppendUvarint(b, uint64(len(e.Payload)))
		return append(b, e.Payload...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Commands)))
	var prev *lease.Command
	for i := range e.Commands {
		c := &e.Commands[i]
		b = appendCommand(b, c, prev, e.Time)
		prev = c
	}
	return b
}

// Marshal encodes e into a new slice.
func (e *Entry) Marshal() []byte {
	size := 12
	for i := range e.Commands {
		size += CommandSize(&e.Commands[i])
	}
	return e.Append(make([]byte, 0, size+len(e.Payload)))
}

func appendCommand(b []byte, c, prev *lease.Command, t time.Duration) []byte {
	h := byte(c.Op) & 0x0f
	same := prev != nil && prev.Key.Namespace == c.Key.Namespace && prev.Key.Group == c.Key.Group
	if same {
		h |= sameGroupFlag
	}
	b = append(b, h)
	if !same {
		b = appendString(b, c.Key.Namespace)
		b = appendString(b, c.Key.Group)
	}
	b = appendString(b, c.Key.Name)
	b = appendString(b, c.Holder)
	if hasDuration(c.Op) {
		b = binary.AppendVarint(b, int64(c.Duration))
	}
	if c.Op == lease.OpQueueClaim {
		b = binary.AppendVarint(b, int64(c.Wait))
	}
	return binary.AppendVarint(b, int64(c.Deadline-t))
}

func hasDuration(op lease.Op) bool {
	return op == lease.OpClaim || op == lease.OpExtend || op == lease.OpQueueClaim
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// CommandSize is an upper bound of the encoded size of c, used by the
// admission queue to bound entry size without encoding twice.
func CommandSize(c *lease.Command) int {
	return 1 + 4*binary.MaxVarintLen16 + len(c.Key.Namespace) + len(c.Key.Group) +
		len(c.Key.Name) + len(c.Holder) + 3*binary.MaxVarintLen64
}

// Decode parses an entry. The returned strings do not alias data.
func Decode(data []byte) (Entry, error) {
	d := decoder{b: data}
	var e Entry
	if len(data) < 2 {
		return e, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(data))
	}
	if data[0] != Version {
		return e, fmt.Errorf("%w: unknown version %d", ErrCorrupt, data[0])
	}
	e.Kind = Kind(data[1])
	d.b = data[2:]
	e.Time = time.Duration(d.varint())
	switch e.Kind {
	case KindSettings, KindMember:
		n := d.uvarint()
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail("payload length")
		}
		if d.err == nil {
			e.Payload = append([]byte(nil), d.b[:n]...)
			d.b = d.b[n:]
		}
	case KindBatch:
		n := d.uvarint()
		// Every command takes at least 4 bytes; never allocate past the input.
		if d.err == nil && n > uint64(len(d.b))/4 {
			d.fail("command count")
		}
		if d.err == nil && n > 0 {
			e.Commands = make([]lease.Command, n)
		}
		for i := 0; d.err == nil && i < len(e.Commands); i++ {
			var prev *lease.Command
			if i > 0 {
				prev = &e.Commands[i-1]
			}
			d.command(&e.Commands[i], prev, e.Time)
		}
	default:
		return Entry{}, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, e.Kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Entry{}, d.err
	}
	return e, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) command(c *lease.Command, prev *lease.Command, t time.Duration) {
	if len(d.b) == 0 {
		d.fail("command header")
		return
	}
	h := d.b[0]
	d.b = d.b[1:]
	c.Op = lease.Op(h & 0x0f)
	if !c.Op.Valid() || h&0x70 != 0 {
		d.fail("op")
		return
	}
	if h&sameGroupFlag != 0 {
		if prev == nil {
			d.fail("group reference")
			return
		}
		c.Key.Namespace, c.Key.Group = prev.Key.Namespace, prev.Key.Group
	} else {
		c.Key.Namespace = d.string()
		c.Key.Group = d.string()
	}
	c.Key.Name = d.string()
	c.Holder = d.string()
	if hasDuration(c.Op) {
		c.Duration = time.Duration(d.varint())
	}
	if c.Op == lease.OpQueueClaim {
		c.Wait = time.Duration(d.varint())
	}
	c.Deadline = t + time.Duration(d.varint())
}
