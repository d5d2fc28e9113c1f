package logentry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/binenc"
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
	// KindSettingsChange carries new cluster settings as a compare-and-set:
	// the state machine applies Payload only if its settings version is
	// still SettingsVersion (the version the change was based on), so two
	// admins, or two leaders, never silently undo each other's change.
	// KindSettings (applied unconditionally) is only read, from old logs.
	KindSettingsChange Kind = 4
)

// Entry is one Raft log entry.
type Entry struct {
	Kind Kind
	// Time is the leader's replicated clock reading when it proposed the
	// entry; every command in it is applied at (at least) this time.
	Time     time.Duration
	Commands []lease.Command
	// Payload is the body of a settings or member entry.
	Payload []byte
	// SettingsVersion is the settings version a KindSettingsChange entry
	// was based on.
	SettingsVersion uint64
}

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("logentry: corrupt entry")

const sameGroupFlag = 0x80

// Append encodes e onto b.
func (e *Entry) Append(b []byte) []byte {
	b = append(b, Version, byte(e.Kind))
	b = binary.AppendVarint(b, int64(e.Time))
	if e.Kind == KindSettingsChange {
		b = binary.AppendUvarint(b, e.SettingsVersion)
	}
	if e.Kind == KindSettings || e.Kind == KindMember || e.Kind == KindSettingsChange {
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
	size := 12 + binary.MaxVarintLen64
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
		b = binenc.AppendString(b, c.Key.Namespace)
		b = binenc.AppendString(b, c.Key.Group)
	}
	b = binenc.AppendString(b, c.Key.Name)
	b = binenc.AppendString(b, c.Holder)
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

// CommandSize is an upper bound of the encoded size of c, used by the
// admission queue to bound entry size without encoding twice.
func CommandSize(c *lease.Command) int {
	return 1 + 4*binary.MaxVarintLen16 + len(c.Key.Namespace) + len(c.Key.Group) +
		len(c.Key.Name) + len(c.Holder) + 3*binary.MaxVarintLen64
}

// Decode parses an entry. The returned strings do not alias data.
func Decode(data []byte) (Entry, error) {
	d := newDecoder(data)
	var e Entry
	if len(data) < 2 {
		return e, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(data))
	}
	if data[0] != Version {
		return e, fmt.Errorf("%w: unknown version %d", ErrCorrupt, data[0])
	}
	e.Kind = Kind(data[1])
	d.B = data[2:]
	e.Time = time.Duration(d.Varint())
	switch e.Kind {
	case KindSettings, KindMember, KindSettingsChange:
		if e.Kind == KindSettingsChange {
			e.SettingsVersion = d.Uvarint()
		}
		n := d.Uvarint()
		if d.Err == nil && n > uint64(len(d.B)) {
			d.Fail("payload length")
		}
		if d.Err == nil {
			e.Payload = append([]byte(nil), d.B[:n]...)
			d.B = d.B[n:]
		}
	case KindBatch:
		n := d.Uvarint()
		// Every command takes at least 4 bytes; never allocate past the input.
		if d.Err == nil && n > uint64(len(d.B))/4 {
			d.Fail("command count")
		}
		if d.Err == nil && n > 0 {
			e.Commands = make([]lease.Command, n)
		}
		for i := 0; d.Err == nil && i < len(e.Commands); i++ {
			var prev *lease.Command
			if i > 0 {
				prev = &e.Commands[i-1]
			}
			d.command(&e.Commands[i], prev, e.Time)
		}
	default:
		return Entry{}, fmt.Errorf("%w: unknown kind %d", ErrCorrupt, e.Kind)
	}
	if d.Err == nil && len(d.B) != 0 {
		d.Fail("trailing bytes")
	}
	if d.Err != nil {
		return Entry{}, d.Err
	}
	return e, nil
}

// decoder reads entries; its errors wrap ErrCorrupt.
type decoder struct{ binenc.Reader }

func newDecoder(b []byte) *decoder { return &decoder{binenc.Reader{B: b, Corrupt: ErrCorrupt}} }

func (d *decoder) command(c *lease.Command, prev *lease.Command, t time.Duration) {
	if len(d.B) == 0 {
		d.Fail("command header")
		return
	}
	h := d.B[0]
	d.B = d.B[1:]
	c.Op = lease.Op(h & 0x0f)
	if !c.Op.Valid() || h&0x70 != 0 {
		d.Fail("op")
		return
	}
	if h&sameGroupFlag != 0 {
		if prev == nil {
			d.Fail("group reference")
			return
		}
		c.Key.Namespace, c.Key.Group = prev.Key.Namespace, prev.Key.Group
	} else {
		c.Key.Namespace = d.Str()
		c.Key.Group = d.Str()
	}
	c.Key.Name = d.Str()
	c.Holder = d.Str()
	if hasDuration(c.Op) {
		c.Duration = time.Duration(d.Varint())
	}
	if c.Op == lease.OpQueueClaim {
		c.Wait = time.Duration(d.Varint())
	}
	c.Deadline = t + time.Duration(d.Varint())
}
