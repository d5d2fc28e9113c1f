package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

func keysOf(infos []lease.Info) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Key.String())
	}
	return out
}

func TestList(t *testing.T) {
	h := newHarness(t)
	var cmds []lease.Command
	// Insert in scrambled order.
	for _, k := range []lease.Key{
		key("ns2", "g1", "b"), key("ns1", "g2", "a"), key("ns1", "g1", "c"), key("ns1", "g1", "a"),
		key("ns1", "g1", "b"), key("ns2", "g0", "z"), key("ns1", "g10", "x"),
	} {
		cmds = append(cmds, claim(k, "h-"+k.Name, min))
	}
	cmds = append(cmds, claim(key("ns1", "g2", "short"), "h", sec))
	h.apply(0, cmds...)
	all := []string{"ns1/g1/a", "ns1/g1/b", "ns1/g1/c", "ns1/g10/x", "ns1/g2/a", "ns1/g2/short", "ns2/g0/z", "ns2/g1/b"}
	tests := []struct {
		ns, grp string
		after   lease.Key
		limit   int
		want    []string
	}{
		{"", "", lease.Key{}, 0, all},
		{"", "", lease.Key{}, -1, all},
		{"", "", lease.Key{}, 3, all[:3]},
		{"ns1", "", lease.Key{}, 0, all[:6]},
		{"ns1", "g1", lease.Key{}, 0, all[:3]},
		{"", "g1", lease.Key{}, 0, []string{"ns1/g1/a", "ns1/g1/b", "ns1/g1/c", "ns2/g1/b"}},
		{"ns3", "", lease.Key{}, 0, nil},
		{"ns1", "nope", lease.Key{}, 0, nil},
		{"", "", key("ns1", "g1", "b"), 0, all[2:]},
		{"", "", key("ns1", "g1", "b"), 2, all[2:4]},
		{"", "", key("ns1", "g1", "zz"), 0, all[3:]},
		{"", "", key("ns1", "g15", ""), 0, all[4:]}, // after a group that does not exist
		{"", "", key("ns2", "g1", "b"), 0, nil},
		{"ns1", "g1", key("ns1", "g1", "a"), 1, []string{"ns1/g1/b"}},
		{"", "g1", key("ns1", "g1", "c"), 0, []string{"ns2/g1/b"}},
	}
	for i, tc := range tests {
		got := keysOf(h.m.List(tc.ns, tc.grp, tc.after, tc.limit, 0))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("case %d List(%q, %q, %v, %d) = %v, want %v", i, tc.ns, tc.grp, tc.after, tc.limit, got, tc.want)
		}
	}
	// Paging with limit 3 visits every lease once, in order.
	var paged []string
	after := lease.Key{}
	for {
		page := h.m.List("", "", after, 3, 0)
		if len(page) == 0 {
			break
		}
		paged = append(paged, keysOf(page)...)
		after = page[len(page)-1].Key
	}
	if fmt.Sprint(paged) != fmt.Sprint(all) {
		t.Errorf("paged = %v", paged)
	}
	// At a later read time, the short lease is hidden though not yet expired by an entry.
	if got := keysOf(h.m.List("ns1", "g2", lease.Key{}, 0, 2*sec)); fmt.Sprint(got) != "[ns1/g2/a]" {
		t.Errorf("List at 2s = %v", got)
	}
	// A pinned lease stays listed past its expiry, marked pinned.
	h.one(0, pin(key("ns1", "g2", "short"), "m"))
	got := h.m.List("ns1", "g2", lease.Key{}, 0, 2*sec)
	if len(got) != 2 || !got[1].Pinned || got[1].Holder != "h" || got[0].Pinned {
		t.Errorf("List with a pin = %+v", got)
	}
	info := got[0]
	if info.Holder != "h-a" || info.Token == 0 || info.Expiry != min {
		t.Errorf("info %+v", info)
	}
}

func buildState(t testing.TB) *harness {
	h := newHarness(t)
	h.entry(logentry.Entry{Kind: logentry.KindSettings, Time: sec, Payload: []byte("settings-v1")})
	h.entry(logentry.Entry{Kind: logentry.KindMember, Time: sec, Payload: logentry.EncodeMember(logentry.Member{ID: "s1", ClientAddr: "a:1", HTTPAddr: "a:2"})})
	h.entry(logentry.Entry{Kind: logentry.KindMember, Time: sec, Payload: logentry.EncodeMember(logentry.Member{ID: "s0", ClientAddr: "b:1"})})
	h.apply(2*sec, claim(kA, "u/0", 10*sec), claim(kB, "u/1", min), claim(kC, "u/2", min), claim(kS, "ctrl-0", 5*sec),
		pin(kA, "m/0"), pin(kA, "m/1"), pin(key("x", "y", "absent"), "m/2"))
	h.tick(30 * sec) // kA overdue but pinned; kS expired
	return h
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := buildState(t)
	snap := h.m.AppendSnapshot(nil)
	m2 := New()
	m2.RecordEvents(true)
	if err := m2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, m2.AppendSnapshot(nil)) {
		t.Fatal("re-snapshot differs")
	}
	if m2.Now() != h.m.Now() || m2.Index() != h.m.Index() || m2.Len() != 3 || string(m2.Settings()) != "settings-v1" {
		t.Fatalf("restored now %v index %d len %d settings %q", m2.Now(), m2.Index(), m2.Len(), m2.Settings())
	}
	if fmt.Sprint(m2.Members()) != fmt.Sprint(h.m.Members()) || len(m2.Members()) != 2 {
		t.Fatalf("members %v", m2.Members())
	}
	if fmt.Sprint(m2.Pinned()) != fmt.Sprint(h.m.Pinned()) || len(m2.Pinned()) != 2 {
		t.Fatalf("pins %v", m2.Pinned())
	}
	if fmt.Sprint(m2.List("", "", lease.Key{}, 0, 0)) != fmt.Sprint(h.m.List("", "", lease.Key{}, 0, 0)) {
		t.Fatal("restored leases differ")
	}
	checkHeap(t, m2)
	// Appending to a prefix: snapshot bytes are the same after the prefix.
	if withPrefix := h.m.AppendSnapshot([]byte("xyz")); !bytes.Equal(withPrefix[3:], snap) {
		t.Fatal("AppendSnapshot depends on its prefix")
	}
	// Both continue identically, including the overdue pinned lease.
	e := &logentry.Entry{Kind: logentry.KindBatch, Time: 31 * sec, Commands: []lease.Command{
		unpin(kA, "m/0"), unpin(kA, "m/1"), claim(kA, "u/9", min), claim(kS, "u/9", min), extend(kB, "u/1", 2*min)}}
	r1, r2 := h.m.Apply(100, e), m2.Apply(100, e)
	if fmt.Sprint(r1) != fmt.Sprint(r2) {
		t.Fatalf("results after restore differ:\n%+v\n%+v", r1, r2)
	}
	if r1[2].Outcome != lease.OutcomeGranted {
		t.Fatalf("overdue pinned lease not expired by its last unpin: %+v", r1)
	}
	if !bytes.Equal(h.m.AppendSnapshot(nil), m2.AppendSnapshot(nil)) {
		t.Fatal("states diverged after restore")
	}
	// The limits come from the snapshot, never from the restoring machine.
	m3 := New()
	m3.limits = lease.Limits{MinDuration: 2 * sec, MaxDuration: 3 * sec}
	if err := m3.Restore(snap); err != nil || m3.Limits() != h.m.Limits() {
		t.Fatalf("restore kept local limits: %v %v", m3.Limits(), err)
	}
}

func TestSnapshotDeterministic(t *testing.T) {
	a, b := buildState(t), buildState(t)
	if !bytes.Equal(a.m.AppendSnapshot(nil), b.m.AppendSnapshot(nil)) {
		t.Fatal("two machines fed the same entries differ")
	}
	// Map iteration order must not leak into the bytes.
	for i := 0; i < 20; i++ {
		if !bytes.Equal(a.m.AppendSnapshot(nil), a.m.AppendSnapshot(nil)) {
			t.Fatal("snapshot of one machine is not repeatable")
		}
	}
}

func resum(b []byte) []byte {
	body := b[:len(b)-4]
	return binary.LittleEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, castagnoli))
}

func TestRestoreRejects(t *testing.T) {
	h := buildState(t)
	good := h.m.AppendSnapshot(nil)
	before := h.m.AppendSnapshot(nil)
	versioned := func(v uint64) []byte {
		b := append([]byte(nil), snapshotMagic...)
		b = binary.AppendUvarint(b, v)
		b = append(b, good[len(snapshotMagic)+1:len(good)-4]...)
		return resum(append(b, 0, 0, 0, 0))
	}
	flip := append([]byte(nil), good...)
	flip[len(flip)/2] ^= 1
	bad := map[string][]byte{
		"empty":          nil,
		"magic only":     snapshotMagic,
		"wrong magic":    append([]byte("XXSNAP"), good[6:]...),
		"bit flip":       flip,
		"truncated":      good[:len(good)-1],
		"trailing":       resum(append(append([]byte(nil), good[:len(good)-4]...), 0, 0, 0, 0, 0)),
		"version 0":      versioned(0),
		"version 4":      versioned(4),
		"cut body":       resum(append(append([]byte(nil), good[:len(good)/2]...), 0, 0, 0, 0)),
		"no groups done": resum(append([]byte("LHSNAP\x01\x00\x00\x00\x00\x00\x05"), 0, 0, 0, 0)),
	}
	for name, b := range bad {
		err := h.m.Restore(b)
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: Restore error %v", name, err)
		}
		if !bytes.Equal(h.m.AppendSnapshot(nil), before) {
			t.Fatalf("%s: failed Restore changed the machine", name)
		}
	}
	if err := h.m.Restore(versioned(4)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("version 4")) {
		t.Errorf("unknown version error does not name it: %v", err)
	}
	if err := h.m.Restore(good); err != nil {
		t.Fatal(err)
	}
	// An empty machine round trips too.
	empty := New().AppendSnapshot(nil)
	m := New()
	if err := m.Restore(empty); err != nil || !bytes.Equal(m.AppendSnapshot(nil), empty) || m.Len() != 0 {
		t.Fatalf("empty round trip: %v", err)
	}
}

// A record holds lease names of 1 to maxRecordName bytes (its length less
// one is a byte). No command makes another, but a snapshot is bytes from
// elsewhere: Restore must refuse an empty or longer name with an error, not
// panic or store a name it would cut short.
func TestRestoreRefusesLeaseNamesARecordCannotHold(t *testing.T) {
	longest := strings.Repeat("n", lease.MaxNameLen)
	m := New()
	m.Apply(1, &logentry.Entry{Kind: logentry.KindBatch, Time: 1, Commands: []lease.Command{
		claim(key("ns", "g", longest), "u/0", min), claim(key("ns", "g", "marker"), "u/1", min)}})
	good := m.AppendSnapshot(nil)
	// The longest valid name round trips.
	if err := New().Restore(good); err != nil {
		t.Fatalf("a %d-byte name: %v", len(longest), err)
	}
	encoded := func(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }
	swap := func(old, new string) []byte {
		i := bytes.Index(good, encoded(old))
		if i < 0 || bytes.Count(good, encoded(old)) != 1 {
			t.Fatalf("%q not once in the snapshot", old)
		}
		b := append(append(append([]byte(nil), good[:i]...), encoded(new)...), good[i+len(encoded(old)):]...)
		return resum(b)
	}
	for what, snap := range map[string][]byte{
		"an empty name":    swap("marker", ""),
		"a 257-byte name":  swap(longest, longest+"n"),
		"a 300-byte name":  swap(longest, strings.Repeat("n", 300)),
		"a 64 KiB name":    swap(longest, strings.Repeat("n", 1<<16)),
		"a name ending it": swap("marker", "markerx"), // control: a valid name still restores
	} {
		r := New()
		err := r.Restore(snap)
		if what == "a name ending it" {
			if err != nil {
				t.Fatalf("control: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: Restore error %v, want ErrBadSnapshot", what, err)
		}
		if r.Len() != 0 {
			t.Errorf("%s: failed Restore left %d leases", what, r.Len())
		}
	}
}
