package fsm

import (
	"hash/maphash"
	"iter"
	"slices"
)

// recordSet is the set of one group's held leases, keyed by lease name
// (record.name()). It replaces a map[string]*record because memory per held
// lease is what bounds a replica, and a Go map is about twice the bytes per
// entry at this size:
//
//   - a map slot holds the key's string header and the value (24 B) plus a
//     control byte, in tables kept between 7/16 and 7/8 full: 28-57 B per
//     lease, although the name is already in the record; and a map of one
//     lease still allocates a header and a whole 8-slot group (about 250 B),
//     once per group, and most groups hold a few leases (Juju: thousands of
//     models with one or a few leases each);
//   - a recordSet slot is the *record alone (8 B), the name being read from
//     the record, in a table kept at most 3/4 full: 11-21 B per lease at
//     scale, 8 B for a group of one lease and 16 B for two.
//
// A set takes the smallest of these forms that holds its records, so that
// the many groups of one or a few leases (Juju: thousands of models with a
// few applications each) cost little beyond the group itself:
//
//   - one record: the *record itself, with no allocation;
//   - up to 2, 4 or 8: an array of that many pointers, dense from the start
//     (nil after the last record), scanned by name;
//   - more: an open-addressing hash table with linear probing, a
//     power-of-two size and backward-shift deletion, so no tombstones build
//     up under churn (claim, revoke, claim).
//
// Beside each slot of a hash table is a one-byte tag cut from the name's
// hash (0 for a free slot). A probe compares tags, and reads a record and
// its name only when the tag matches: without tags every probe read the
// record and then its name, two cache misses per slot in a large set, and a
// lookup of an absent name (every claim of a new lease) probes to the end
// of its cluster; that was 17.5% of a 3-replica process's CPU under
// batched claims into one large group (docs/performance.md, section 16).
// With 7 bits of tag, a probe past a slot holding another name reads that
// record once in 128, for one byte more per slot.
//
// A set grows to the next form when the current one is full, and shrinks to
// the form that fits once it is a quarter full or less, so a group that
// held many leases and now holds few gives the memory back, and a set at a
// boundary does not reallocate on every claim and revoke.
//
// The hash is seeded per machine (maphash.MakeSeed), so clients cannot pick
// names that collide, and the iteration order differs between replicas:
// nothing replicated may depend on it. Every listing sorts (List,
// AppendSnapshot), keeps a bounded top-k in key order (Page), or only counts;
// expiry goes through the expiry heap's total order.
//
// The zero value is an empty set. A set must not be modified while all()
// iterates over it.
type recordSet struct {
	// t is nil, a *record, a *[2]*record, *[4]*record, *[8]*record or a
	// *hashTable. An interface is 16 bytes, so a group stays one 64-byte
	// object (TestSmallGroupAllocations).
	t any
}

// maxArray is the largest array form; a larger set is hashed.
const maxArray = 8

// hashTable is a hashed set: recs and tags have the same power-of-two
// length, and tags[i] is 0 exactly when recs[i] is nil.
type hashTable struct {
	recs []*record
	tags []uint8
	n    int // records in the table
}

// maxLoad is the most records a hash table of c slots holds (3/4 of it):
// at least one slot stays empty, which ends every probe. A lookup of an
// absent name probes to the end of its cluster: about (1 + 1/(1-a)^2)/2
// slots at load a, 32 at 7/8 and 8.5 at 3/4. Before tags (each probe then
// read a record and its name), a miss in a set of 115,000 leases at 7/8
// took 1.8 µs, 5% of the CPU of a 3-replica process at 100 unary claimers
// (docs/performance.md, section 13); 3/4 costs about 1 B more per lease.
func maxLoad(c int) int { return c * 3 / 4 }

// tableSize is the hash table for n > maxArray records: the smallest that
// holds them.
func tableSize(n int) int {
	c := 2 * maxArray
	for maxLoad(c) < n {
		c *= 2
	}
	return c
}

func hashName(seed maphash.Seed, name string) uint64 { return maphash.String(seed, name) }

// tagOf is a slot's tag for a name of hash h: its top 7 bits (the table
// index comes from the low bits), with the high bit set so no tag is 0.
func tagOf(h uint64) uint8 { return uint8(h>>57) | 0x80 }

// array returns t's pointers if t is an array form, else nil.
func array(t any) []*record {
	switch a := t.(type) {
	case *[2]*record:
		return a[:]
	case *[4]*record:
		return a[:]
	case *[maxArray]*record:
		return a[:]
	}
	return nil
}

// shape is the slots of s's form (0 empty, 1 a record, 2, 4 or 8 an
// array, a hash table's size) and the records in it.
func (s *recordSet) shape() (slots, n int) {
	switch t := s.t.(type) {
	case nil:
		return 0, 0
	case *record:
		return 1, 1
	case *hashTable:
		return len(t.tags), t.n
	}
	a := array(s.t)
	for n < len(a) && a[n] != nil {
		n++
	}
	return len(a), n
}

// capacity is how many records the set's form holds.
func (s *recordSet) capacity() int {
	slots, _ := s.shape()
	if _, hashed := s.t.(*hashTable); hashed {
		return maxLoad(slots)
	}
	return slots
}

// len is the number of records.
func (s *recordSet) len() int {
	_, n := s.shape()
	return n
}

// get returns the record named name, or nil.
func (s *recordSet) get(seed maphash.Seed, name string) *record {
	switch t := s.t.(type) {
	case nil:
		return nil
	case *record:
		if t.name() == name {
			return t
		}
		return nil
	case *hashTable:
		return t.get(hashName(seed, name), name)
	}
	for _, r := range array(s.t) {
		if r == nil || r.name() == name {
			return r
		}
	}
	return nil
}

func (t *hashTable) get(h uint64, name string) *record {
	tag := tagOf(h)
	mask := len(t.tags) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		switch t.tags[i] {
		case 0:
			return nil
		case tag:
			if r := t.recs[i]; r.name() == name {
				return r
			}
		}
	}
}

// add inserts r, whose name must not be in the set.
func (s *recordSet) add(seed maphash.Seed, r *record) {
	n := s.len()
	if n == s.capacity() {
		s.reform(seed, n+1)
	}
	switch t := s.t.(type) {
	case nil:
		s.t = r
	case *hashTable:
		t.place(hashName(seed, r.name()), r)
	default:
		array(t)[n] = r
	}
}

// place puts r, whose name hashes to h, in the first free slot from its
// home.
func (t *hashTable) place(h uint64, r *record) {
	mask := len(t.tags) - 1
	i := int(h) & mask
	for t.tags[i] != 0 {
		i = (i + 1) & mask
	}
	t.recs[i], t.tags[i] = r, tagOf(h)
	t.n++
}

// remove deletes r, which must be in the set.
func (s *recordSet) remove(seed maphash.Seed, r *record) {
	switch t := s.t.(type) {
	case *record:
		s.t = nil
		return
	case *hashTable:
		t.remove(seed, r)
	default:
		a := array(t)
		i := slices.Index(a, r)
		copy(a[i:], a[i+1:])
		a[len(a)-1] = nil
	}
	if n := s.len(); n*4 <= s.capacity() {
		s.reform(seed, n)
	}
}

func (t *hashTable) remove(seed maphash.Seed, r *record) {
	mask := len(t.tags) - 1
	i := int(hashName(seed, r.name())) & mask
	for t.recs[i] != r {
		i = (i + 1) & mask
	}
	// Backward shift: walk the cluster after the hole, moving back into it
	// every record whose home is not in (hole, j] (cyclically), so each
	// record stays reachable from its home without a gap.
	for j := (i + 1) & mask; t.tags[j] != 0; j = (j + 1) & mask {
		home := int(hashName(seed, t.recs[j].name())) & mask
		var stays bool
		if i <= j {
			stays = i < home && home <= j
		} else { // the cluster wrapped around the end of the table
			stays = i < home || home <= j
		}
		if !stays {
			t.recs[i], t.tags[i] = t.recs[j], t.tags[j]
			i = j
		}
	}
	t.recs[i], t.tags[i] = nil, 0
	t.n--
}

// reserve makes room for n records in an empty set, so that adding them
// does not rebuild a large table on the way (a snapshot's restore knows
// each group's size).
func (s *recordSet) reserve(seed maphash.Seed, n int) {
	if n > maxArray && s.capacity() < n {
		s.reform(seed, n)
	}
}

// reform moves the records to the smallest form that holds n of them (n is
// at least the set's length): the next form up when a set grows, the one
// that fits when it shrinks.
func (s *recordSet) reform(seed maphash.Seed, n int) {
	var next any
	switch {
	case n == 0:
	case n == 1:
		// The one record, if there is one, is placed below.
	case n <= 2:
		next = new([2]*record)
	case n <= 4:
		next = new([4]*record)
	case n <= maxArray:
		next = new([maxArray]*record)
	default:
		c := tableSize(n)
		next = &hashTable{recs: make([]*record, c), tags: make([]uint8, c)}
	}
	i := 0
	for r := range s.all() {
		switch t := next.(type) {
		case nil:
			next = r
		case *hashTable:
			t.place(hashName(seed, r.name()), r)
		default:
			array(t)[i] = r
		}
		i++
	}
	s.t = next
}

// all yields every record once, in an order that depends on the seed.
func (s *recordSet) all() iter.Seq[*record] {
	return func(yield func(*record) bool) {
		var rs []*record
		switch t := s.t.(type) {
		case nil:
			return
		case *record:
			yield(t)
			return
		case *hashTable:
			rs = t.recs
		default:
			rs = array(t)
		}
		for _, r := range rs {
			if r != nil && !yield(r) {
				return
			}
		}
	}
}
