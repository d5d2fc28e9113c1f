package logentry

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, every
// error must wrap ErrCorrupt, and every entry it accepts must re-encode to
// exactly the input (the encoding is canonical) and decode again to itself.
func FuzzDecode(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(e.Marshal())
	}
	f.Add([]byte{Version, byte(KindBatch), 0, 1, byte(lease.OpPin), 1, 'a', 1, 'b', 1, 'c', 1, 'e', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for i, c := range e.Commands {
			if !c.Op.Valid() {
				t.Fatalf("command %d has invalid op %d", i, c.Op)
			}
		}
		b := e.Marshal()
		e2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decode of %x: %v", b, err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("decode(marshal(decode(x))) differs:\n%+v\n%+v", e, e2)
		}
		// Varints have one minimal form, but Decode accepts non-minimal ones
		// and a command may spell out a group it could have shared, so only
		// require the re-encoding to be no longer than the input.
		if len(b) > len(data) {
			t.Fatalf("re-encoding grew: %d > %d bytes", len(b), len(data))
		}
	})
}

// FuzzRoundTrip builds a valid entry from fuzzed fields and checks
// Decode(Marshal(e)) == e.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(1), int64(time.Second), uint8(1), "ns", "g", "n", "h", int64(time.Minute), int64(3*time.Second), uint8(3), []byte(nil))
	f.Add(uint8(1), int64(-5), uint8(4), "a", "b", "c/d", "e", int64(0), int64(-1<<63), uint8(1), []byte(nil))
	f.Add(uint8(2), int64(0), uint8(0), "", "", "", "", int64(0), int64(0), uint8(0), []byte("settings"))
	f.Fuzz(func(t *testing.T, kind uint8, tm int64, op uint8, ns, grp, name, holder string, dur, dl int64, n uint8, payload []byte) {
		e := Entry{Kind: Kind(kind%3 + 1), Time: time.Duration(tm)}
		if e.Kind != KindBatch {
			e.Payload = payload
		} else {
			// n commands cycling through ops and alternating between two groups
			// in runs, so same-group sharing is exercised both ways.
			for i := 0; i < int(n%16); i++ {
				c := lease.Command{Op: lease.Op((int(op)+i)%7 + 1), Key: lease.Key{Namespace: ns, Group: grp, Name: name},
					Holder: holder, Duration: time.Duration(dur + int64(i)), Deadline: time.Duration(dl - int64(i))}
				if i%3 == 2 {
					c.Key.Group += "x"
				}
				e.Commands = append(e.Commands, c)
			}
		}
		b := e.Marshal()
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Marshal(%+v)): %v", e, err)
		}
		if want := normalize(e); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, want)
		}
		if !bytes.Equal(got.Marshal(), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzDecodeMember checks DecodeMember never panics, errors wrap ErrCorrupt,
// and accepted payloads re-encode to the input.
func FuzzDecodeMember(f *testing.F) {
	f.Add(EncodeMember(Member{ID: "s1", ClientAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080"}))
	f.Add(EncodeMember(Member{ID: "x"}))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodeMember(p)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if m.ID == "" {
			t.Fatal("accepted a member without an ID")
		}
		b := EncodeMember(m)
		if m2, err := DecodeMember(b); err != nil || m2 != m {
			t.Fatalf("re-decode: %+v, %v", m2, err)
		}
		if len(b) > len(p) {
			t.Fatalf("re-encoding grew: %d > %d", len(b), len(p))
		}
	})
}
