// Package binenc holds the varint reader and append helpers shared by
// Leasehold's binary formats (Raft log entries, snapshots). Every length and
// count read from input is checked against the bytes left, so hostile input
// can neither panic a decoder nor make it allocate past its own size.
package binenc

import (
	"encoding/binary"
	"fmt"
)

// Reader decodes B front to back. The first error sticks: later reads return
// zero values, so a decoder checks Err once at the end.
type Reader struct {
	B   []byte
	Err error
	// Corrupt is wrapped by every error (e.g. logentry.ErrCorrupt).
	Corrupt error
}

// Fail records a decoding error naming what was bad, unless one is recorded.
func (d *Reader) Fail(what string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: bad %s", d.Corrupt, what)
	}
}

// Uvarint reads an unsigned varint.
func (d *Reader) Uvarint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("uvarint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed (zig-zag) varint.
func (d *Reader) Varint() int64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail("varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Count reads an element count, refusing any larger than the remaining
// input could hold at minSize bytes an element.
func (d *Reader) Count(minSize int) int {
	n := d.Uvarint()
	if d.Err == nil && n > uint64(len(d.B)/minSize) {
		d.Fail("count")
		return 0
	}
	return int(n)
}

// Raw reads a length-prefixed byte string without copying it.
func (d *Reader) Raw() []byte {
	n := d.Uvarint()
	if d.Err != nil {
		return nil
	}
	if n > uint64(len(d.B)) {
		d.Fail("length")
		return nil
	}
	p := d.B[:n:n]
	d.B = d.B[n:]
	return p
}

// Bytes reads a length-prefixed byte string into a new slice (nil if empty).
func (d *Reader) Bytes() []byte {
	p := d.Raw()
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// Str reads a length-prefixed string.
func (d *Reader) Str() string { return string(d.Raw()) }

// AppendString appends s with its length prefix.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBytes appends p with its length prefix.
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}
