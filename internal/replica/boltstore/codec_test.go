package boltstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCodecRejectsBadInput(t *testing.T) {
	good, err := encodeLog(entry(5, 2))
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{2}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 0),
		"huge length": {codecV1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad time":    {codecV1, 1, 1, 0, 0, 0, 2, 0xEE, 0xEE},
	}
	for name, b := range bad {
		var l raft.Log
		if err := decodeLog(b, &l); err == nil {
			t.Errorf("%s: decoded %+v", name, l)
		}
	}
}

// A zone offset with seconds cannot be marshalled by time; the instant must
// still survive.
func TestCodecOddZone(t *testing.T) {
	at := time.Unix(1700000000, 5).In(time.FixedZone("odd", 3601))
	b, err := encodeLog(&raft.Log{Index: 1, AppendedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := decodeLog(b, &l); err != nil {
		t.Fatal(err)
	}
	if !l.AppendedAt.Equal(at) {
		t.Fatalf("AppendedAt = %v, want %v", l.AppendedAt, at)
	}
}

// FuzzDecodeLog: decoding arbitrary bytes never panics, and whatever decodes
// re-encodes to bytes that decode to the same entry.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range []*raft.Log{
		entry(1, 1),
		{Index: 3, Term: 2, Type: raft.LogNoop},
		{Index: 1 << 40, Term: 1<<64 - 1, Type: raft.LogConfiguration, Data: []byte("cfg"), AppendedAt: time.Unix(0, 0).UTC()},
	} {
		b, err := encodeLog(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			return
		}
		again, err := encodeLog(&l)
		if err != nil {
			t.Fatalf("re-encode of %+v: %v", l, err)
		}
		var l2 raft.Log
		if err := decodeLog(again, &l2); err != nil || !sameLog(&l, &l2) {
			t.Fatalf("round trip: %+v -> %+v (%v)", l, l2, err)
		}
	})
}
