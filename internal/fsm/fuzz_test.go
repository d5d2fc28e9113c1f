package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// FuzzRestore feeds arbitrary bytes to Restore. Random bytes almost never
// carry a valid CRC-32C, so each input is tried twice: as is, and with its
// checksum fixed up, which lets the fuzzer explore the decoder itself.
// Restore must never panic; on error it must leave the machine unchanged;
// on success the restored state must be self-consistent, its snapshot must
// be stable through another restore, and two copies must keep agreeing when
// more entries are applied.
func FuzzRestore(f *testing.F) {
	h := buildState(f)
	snap := h.m.AppendSnapshot(nil)
	f.Add(snap)
	f.Add(snap[:len(snap)-4])
	f.Add(New().AppendSnapshot(nil))
	f.Add([]byte("LHSNAP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fixed := binary.LittleEndian.AppendUint32(append([]byte(nil), data...), crc32.Checksum(data, castagnoli))
		for _, in := range [][]byte{data, fixed} {
			checkRestore(t, in)
		}
	})
}

func checkRestore(t *testing.T, data []byte) {
	m := New()
	m.Apply(1, &logentry.Entry{Kind: logentry.KindBatch, Time: 1, Commands: []lease.Command{claim(kA, "u", min)}})
	orig := m.AppendSnapshot(nil)
	if err := m.Restore(data); err != nil {
		if !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("error %v does not wrap ErrBadSnapshot", err)
		}
		if !bytes.Equal(m.AppendSnapshot(nil), orig) {
			t.Fatal("failed Restore changed the machine")
		}
		return
	}
	checkHeap(t, m)
	s1 := m.AppendSnapshot(nil)
	for i := 0; i < 3; i++ {
		if !bytes.Equal(s1, m.AppendSnapshot(nil)) {
			t.Fatal("snapshot of a restored machine is not repeatable")
		}
	}
	m2 := New()
	if err := m2.Restore(s1); err != nil {
		t.Fatalf("restore of a re-snapshot: %v", err)
	}
	if s2 := m2.AppendSnapshot(nil); !bytes.Equal(s1, s2) {
		t.Fatalf("re-snapshot not stable:\n%x\n%x", s1, s2)
	}
	// Keep going from the restored state: both copies stay identical and
	// the reads do not panic.
	later := m.Now() + 2*min
	e := &logentry.Entry{Kind: logentry.KindBatch, Time: later, Commands: []lease.Command{
		claim(kA, "u", min), extend(kB, "v", min), revoke(kC, "w"), unpin(kA, "m"), pin(kB, "m"),
	}}
	for _, k := range m.List("", "", lease.Key{}, 4, 0) {
		e.Commands = append(e.Commands, withDeadline(extend(k.Key, k.Holder, min), later), withDeadline(revoke(k.Key, k.Holder), later))
	}
	for k, es := range m.Pinned() {
		for _, en := range es {
			if len(e.Commands) < 32 {
				e.Commands = append(e.Commands, withDeadline(unpin(k, en), later))
			}
		}
	}
	idx := m.Index() + 1
	r1, r2 := m.Apply(idx, e), m2.Apply(idx, e)
	if fmt.Sprint(r1) != fmt.Sprint(r2) {
		t.Fatalf("copies diverged:\n%+v\n%+v", r1, r2)
	}
	if !bytes.Equal(m.AppendSnapshot(nil), m2.AppendSnapshot(nil)) {
		t.Fatal("copies diverged after apply")
	}
	checkHeap(t, m)
	m.Get(kA, 0)
	m.Members()
}

// Pin keys in a snapshot are not validated, so two distinct keys can render
// to the same "ns/group/name" string ("a/b"+"c"+"d" and "a"+"b/c"+"d"). The
// snapshot must still order them deterministically.
func TestSnapshotPinOrderIsTotal(t *testing.T) {
	m := New()
	m.pins[key("a/b", "c", "d")] = map[string]struct{}{"e1": {}}
	m.pins[key("a", "b/c", "d")] = map[string]struct{}{"e2": {}}
	m.pins[key("a", "b", "c/d")] = map[string]struct{}{"e3": {}}
	snap := m.AppendSnapshot(nil)
	for i := 0; i < 50; i++ {
		m2 := New()
		if err := m2.Restore(snap); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(snap, m2.AppendSnapshot(nil)) {
			t.Fatal("snapshot order of pin keys with the same string form is not deterministic")
		}
	}
}
