package fsm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/binenc"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// SnapshotVersion is the version of the snapshot format written by
// AppendSnapshot. Restore reads it, version 2 (no settings version or
// limits) and version 1 (no claim queues either), so a cluster upgraded
// mid-way still restores its old snapshots, and rejects any other.
const SnapshotVersion = 3

var snapshotMagic = []byte("LHSNAP")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSnapshot is wrapped by every Restore error.
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

// AppendSnapshot encodes the whole state onto b. The encoding is
// deterministic: two replicas with the same state produce the same bytes.
//
// Layout: magic, version, now, index, token counter, settings, (version 3:
// settings version, min and max duration in force), member directory, groups (each:
// namespace, group, leases by name: name, holder, token, start, duration),
// pins (key, entities), claim queues (version 2: key, then claimants in
// arrival order: holder, duration, keep-alive expiry), then a CRC-32C of
// everything before it.
func (m *Machine) AppendSnapshot(b []byte) []byte { return m.appendSnapshot(b, SnapshotVersion) }

// appendSnapshot writes format version (older ones only for tests of
// Restore's compatibility).
func (m *Machine) appendSnapshot(b []byte, version uint64) []byte {
	start := len(b)
	b = append(b, snapshotMagic...)
	b = binary.AppendUvarint(b, version)
	b = binary.AppendVarint(b, int64(m.now))
	b = binary.AppendUvarint(b, m.index)
	b = binary.AppendUvarint(b, m.tokenSeq)
	b = binenc.AppendBytes(b, m.settings)
	// The limits in force are written out, not derived from the payload on
	// restore: a legacy settings entry may have stored a payload whose
	// limits were not adopted.
	if version >= 3 {
		b = binary.AppendUvarint(b, m.settingsVersion)
		b = binary.AppendVarint(b, int64(m.limits.MinDuration))
		b = binary.AppendVarint(b, int64(m.limits.MaxDuration))
	}
	members := m.Members()
	b = binary.AppendUvarint(b, uint64(len(members)))
	for _, mem := range members {
		b = binenc.AppendBytes(b, logentry.EncodeMember(mem))
	}

	gks := make([]groupKey, 0, len(m.groups))
	for gk := range m.groups {
		gks = append(gks, gk)
	}
	slices.SortFunc(gks, compareGroupKeys)
	b = binary.AppendUvarint(b, uint64(len(gks)))
	var recs []*record
	for _, gk := range gks {
		g := m.groups[gk]
		b = binenc.AppendString(b, gk.ns)
		b = binenc.AppendString(b, gk.group)
		// By name: the set's order depends on the machine's hash seed.
		recs = slices.AppendSeq(recs[:0], g.leases.all())
		slices.SortFunc(recs, compareNames)
		b = binary.AppendUvarint(b, uint64(len(recs)))
		for _, r := range recs {
			b = binenc.AppendString(b, r.name())
			b = binenc.AppendString(b, r.holder())
			b = binary.AppendUvarint(b, r.token)
			b = binary.AppendVarint(b, int64(r.start))
			b = binary.AppendVarint(b, int64(r.expiry-r.start))
		}
	}

	keys := make([]lease.Key, 0, len(m.pins))
	for k := range m.pins {
		keys = append(keys, k)
	}
	// By rendered key, then by parts: a restored snapshot may hold pin keys
	// with '/' in namespace or group, whose rendered forms can collide, and
	// the order must still be total for the bytes to be deterministic.
	slices.SortFunc(keys, func(a, b lease.Key) int {
		return cmp.Or(strings.Compare(a.String(), b.String()),
			strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group))
	})
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binenc.AppendString(b, k.Namespace)
		b = binenc.AppendString(b, k.Group)
		b = binenc.AppendString(b, k.Name)
		set := m.pins[k]
		es := make([]string, 0, len(set))
		for e := range set {
			es = append(es, e)
		}
		slices.Sort(es)
		b = binary.AppendUvarint(b, uint64(len(es)))
		for _, e := range es {
			b = binenc.AppendString(b, e)
		}
	}
	if version >= 2 {
		b = m.appendQueues(b)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// Restore replaces the machine's state with the snapshot in data. On error
// the machine is unchanged. Nothing of the machine's own state (its limits
// included) survives: the result depends on data alone.
func (m *Machine) Restore(data []byte) error {
	n, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	n.recordEvents, n.skipExtends, n.counts = m.recordEvents, m.skipExtends, m.counts
	*m = *n
	return nil
}

func decodeSnapshot(data []byte) (*Machine, error) {
	if len(data) < len(snapshotMagic)+4 || !bytes.Equal(data[:len(snapshotMagic)], snapshotMagic) {
		return nil, fmt.Errorf("%w: not a Leasehold snapshot", ErrBadSnapshot)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	d := reader{B: body[len(snapshotMagic):], Corrupt: ErrBadSnapshot}
	version := d.Uvarint()
	if d.Err == nil && (version < 1 || version > SnapshotVersion) {
		return nil, fmt.Errorf("%w: unknown version %d (this build reads 1 to %d)", ErrBadSnapshot, version, SnapshotVersion)
	}
	m := New()
	m.now = time.Duration(d.Varint())
	m.index = d.Uvarint()
	m.tokenSeq = d.Uvarint()
	if s := d.Bytes(); len(s) > 0 {
		m.settings = s
	}
	if version >= 3 {
		m.settingsVersion = d.Uvarint()
		m.limits = lease.Limits{MinDuration: time.Duration(d.Varint()), MaxDuration: time.Duration(d.Varint())}
		if d.Err == nil && m.limits.Validate() != nil {
			d.Fail("limits")
		}
	} else if m.settings != nil {
		// Older snapshots: the payload's limits when valid (the best they
		// record), and one settings entry so far.
		m.settingsVersion = 1
		if l, err := DecodeLimits(m.settings); err == nil {
			m.limits = l
		}
	}
	nmem := d.Count(4)
	for i := 0; i < nmem && d.Err == nil; i++ {
		mem, err := logentry.DecodeMember(d.Bytes())
		if err != nil || m.members[mem.ID].ID != "" {
			d.Fail("member")
			break
		}
		m.members[mem.ID] = mem
	}
	ngroups := d.Count(2)
	var all []*record
	for i := 0; i < ngroups && d.Err == nil; i++ {
		gk := groupKey{d.Str(), d.Str()}
		nl := d.Count(5)
		if d.Err != nil {
			break
		}
		if _, dup := m.groups[gk]; dup || nl == 0 {
			d.Fail("group")
			break
		}
		g := m.newGroup(gk)
		// nl is bounded by the bytes left (Count), so this is no bomb.
		g.leases.reserve(m.seed, nl)
		for j := 0; j < nl && d.Err == nil; j++ {
			name, holder := d.Raw(), d.Raw()
			token := d.Uvarint()
			start := time.Duration(d.Varint())
			// A record holds names of 1 to maxRecordName bytes, and no
			// valid command makes another.
			if len(name) == 0 || len(name) > maxRecordName {
				d.Fail("lease name")
				break
			}
			// The conversions in a concatenation make one allocation, not three.
			r := &record{gnum: g.num, nameHolder: string([]byte{byte(len(name) - 1)}) + string(name) + string(holder),
				token: token, start: start, expiry: start + time.Duration(d.Varint())}
			if g.leases.get(m.seed, r.name()) != nil || r.token == 0 || r.token > m.tokenSeq {
				d.Fail("lease")
				break
			}
			g.leases.add(m.seed, r)
			all = append(all, r)
		}
		m.count += nl
	}
	npins := d.Count(4)
	for i := 0; i < npins && d.Err == nil; i++ {
		k := lease.Key{Namespace: d.Str(), Group: d.Str(), Name: d.Str()}
		ne := d.Count(1)
		if ne == 0 {
			d.Fail("pin")
		}
		set := make(map[string]struct{}, ne)
		for j := 0; j < ne && d.Err == nil; j++ {
			set[d.Str()] = struct{}{}
		}
		m.pins[k] = set
	}
	if version >= 2 {
		m.readQueues(&d)
	}
	if d.Err == nil && len(d.B) != 0 {
		d.Fail("trailing bytes")
	}
	if d.Err != nil {
		return nil, d.Err
	}
	// Rebuild the expiry index: leases held past expiry by pins stay out of it.
	m.heap = make(expiryHeap, 0, len(all))
	for _, r := range all {
		if r.expiry < m.now && m.pinned(m.group(r).key, r.name()) {
			r.heapIdx = -1
			continue
		}
		r.heapIdx = int32(len(m.heap))
		m.heap = append(m.heap, r)
	}
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.heap.down(i, m.gtab)
	}
	return m, nil
}

// reader decodes snapshots; its errors wrap ErrBadSnapshot.
type reader = binenc.Reader
