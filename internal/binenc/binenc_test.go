package binenc

import (
	"encoding/binary"
	"errors"
	"testing"
)

var errTest = errors.New("test corrupt")

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = AppendString(b, "name")
	b = AppendBytes(b, nil)
	b = binary.AppendUvarint(b, 2) // a count of 2 one-byte elements follows
	b = append(b, 'x', 'y')
	d := Reader{B: b, Corrupt: errTest}
	if u, v, s, p, n := d.Uvarint(), d.Varint(), d.Str(), d.Bytes(), d.Count(1); u != 300 || v != -5 || s != "name" || p != nil || n != 2 {
		t.Fatalf("got %d %d %q %v %d", u, v, s, p, n)
	}
	if d.Err != nil || len(d.B) != 2 {
		t.Fatalf("err %v, %d bytes left", d.Err, len(d.B))
	}
}

// Lengths and counts larger than the input are refused, and the first error sticks.
func TestHostileLengths(t *testing.T) {
	for name, read := range map[string]func(d *Reader){
		"length": func(d *Reader) { d.Raw() },
		"count":  func(d *Reader) { d.Count(1) },
	} {
		d := Reader{B: binary.AppendUvarint(nil, 1<<40), Corrupt: errTest}
		read(&d)
		if !errors.Is(d.Err, errTest) {
			t.Fatalf("%s: err %v", name, d.Err)
		}
		first := d.Err
		if d.Uvarint() != 0 || d.Err != first {
			t.Fatalf("%s: error did not stick", name)
		}
	}
	d := Reader{B: []byte{0x80}, Corrupt: errTest} // truncated varint
	if d.Uvarint(); !errors.Is(d.Err, errTest) {
		t.Fatal("truncated varint accepted")
	}
}
