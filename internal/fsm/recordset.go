package fsm

import (
	"hash/maphash"
	"iter"
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
// It is an open-addressing hash set with linear probing, a power-of-two
// table, and backward-shift deletion, so no tombstones build up under churn
// (claim, revoke, claim). Tables of up to smallSet slots are not hashed but
// scanned: a group of one or two leases never hashes a name.
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
	// slots is the table, and its length the number of records: the table
	// is slots[:cap(slots)] (so a set is one slice header, and a group one
	// 64-byte object). A small table keeps its records dense in
	// slots[:len(slots)]; a hashed one has them anywhere, nil meaning empty.
	slots []*record
}

// smallSet is the largest table that is scanned rather than hashed.
const smallSet = 2

// maxLoad is the most records a hashed table of c slots holds (3/4 of it):
// at least one slot stays empty, which ends every probe. Each probe reads
// the record and its name (two cache misses in a large set), and a lookup
// of an absent name (every claim of a new lease) probes to the end of its
// cluster: about (1 + 1/(1-a)^2)/2 slots at load a, 32 at 7/8 and 8.5 at
// 3/4. At 7/8, a miss in a set of 115,000 leases took 1.8 µs, 5% of the CPU
// of a 3-replica process at 100 unary claimers (docs/performance.md,
// section 13); at 3/4 it takes a third of that, for about 1 B more per
// lease.
func maxLoad(c int) int {
	if c <= smallSet {
		return c
	}
	return c * 3 / 4
}

// tableSize is the table for n records: the smallest that holds them.
func tableSize(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= smallSet:
		c := 1
		for c < n {
			c *= 2
		}
		return c
	}
	c := 2 * smallSet
	for maxLoad(c) < n {
		c *= 2
	}
	return c
}

func hashName(seed maphash.Seed, name string) uint64 { return maphash.String(seed, name) }

// len is the number of records.
func (s *recordSet) len() int { return len(s.slots) }

// get returns the record named name, or nil.
func (s *recordSet) get(seed maphash.Seed, name string) *record {
	t := s.slots[:cap(s.slots)]
	if len(t) <= smallSet {
		for _, r := range s.slots {
			if r.name() == name {
				return r
			}
		}
		return nil
	}
	mask := len(t) - 1
	for i := int(hashName(seed, name)) & mask; ; i = (i + 1) & mask {
		if r := t[i]; r == nil || r.name() == name {
			return r
		}
	}
}

// add inserts r, whose name must not be in the set.
func (s *recordSet) add(seed maphash.Seed, r *record) {
	n := len(s.slots)
	if n+1 > maxLoad(cap(s.slots)) {
		s.resize(seed, tableSize(n+1))
	}
	t := s.slots[:cap(s.slots)]
	if len(t) <= smallSet {
		s.slots = append(s.slots, r) // within capacity
		return
	}
	place(seed, t, r)
	s.slots = t[:n+1]
}

// place puts r in the first free slot from its home in the hashed table t.
func place(seed maphash.Seed, t []*record, r *record) {
	mask := len(t) - 1
	i := int(hashName(seed, r.name())) & mask
	for t[i] != nil {
		i = (i + 1) & mask
	}
	t[i] = r
}

// remove deletes r, which must be in the set. A table a quarter full or
// less is rebuilt smaller, so a group that held many leases and now holds
// few gives the memory back.
func (s *recordSet) remove(seed maphash.Seed, r *record) {
	n := len(s.slots)
	t := s.slots[:cap(s.slots)]
	if len(t) <= smallSet {
		for i, x := range s.slots {
			if x == r {
				s.slots[i] = s.slots[n-1]
				s.slots[n-1] = nil
				break
			}
		}
		s.slots = s.slots[:n-1]
	} else {
		mask := len(t) - 1
		i := int(hashName(seed, r.name())) & mask
		for t[i] != r {
			i = (i + 1) & mask
		}
		// Backward shift: walk the cluster after the hole, moving back into
		// it every record whose home is not in (hole, j] (cyclically), so
		// each record stays reachable from its home without a gap.
		for j := (i + 1) & mask; t[j] != nil; j = (j + 1) & mask {
			home := int(hashName(seed, t[j].name())) & mask
			var stays bool
			if i <= j {
				stays = i < home && home <= j
			} else { // the cluster wrapped around the end of the table
				stays = i < home || home <= j
			}
			if !stays {
				t[i] = t[j]
				i = j
			}
		}
		t[i] = nil
		s.slots = t[:n-1]
	}
	if n-1 == 0 {
		s.slots = nil
	} else if len(t) > smallSet && (n-1)*4 <= len(t) {
		s.resize(seed, tableSize(n-1))
	}
}

// resize moves the records to a new table of c slots.
func (s *recordSet) resize(seed maphash.Seed, c int) {
	old := s.slots[:cap(s.slots)]
	n := len(s.slots)
	t := make([]*record, c)
	if c <= smallSet {
		j := 0
		for _, r := range old {
			if r != nil {
				t[j] = r
				j++
			}
		}
	} else {
		for _, r := range old {
			if r != nil {
				place(seed, t, r)
			}
		}
	}
	s.slots = t[:n]
}

// all yields every record once, in an order that depends on the seed.
func (s *recordSet) all() iter.Seq[*record] {
	return func(yield func(*record) bool) {
		for _, r := range s.slots[:cap(s.slots)] {
			if r != nil && !yield(r) {
				return
			}
		}
	}
}
