package fsm

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
	"pgregory.net/rapid"
)

// checkSet verifies a recordSet: len counts its records and no name is
// there twice; its form holds more than a quarter of what it can (so a set
// that shrank gave its memory back); an array is dense; in a hash table a
// slot's tag is 0 exactly when the slot is free and is otherwise its
// record's tag, a slot is free, and every record is reachable from its home
// slot without crossing a free one (what lookups rely on, and what deletion
// must preserve).
func checkSet(t fataler, seed maphash.Seed, s *recordSet) {
	t.Helper()
	n := 0
	seen := make(map[string]bool)
	for r := range s.all() {
		n++
		if seen[r.name()] {
			t.Fatalf("%q twice", r.name())
		}
		seen[r.name()] = true
	}
	if n != s.len() {
		t.Fatalf("%d records in the set, len %d", n, s.len())
	}
	if c := s.capacity(); n > c || (n*4 <= c && c > 0) {
		t.Fatalf("%d records in a form for %d (%T)", n, c, s.t)
	}
	if a := array(s.t); a != nil {
		for i := 1; i < len(a); i++ {
			if a[i] != nil && a[i-1] == nil {
				t.Fatalf("array: record at %d after a gap", i)
			}
		}
	}
	tab, ok := s.t.(*hashTable)
	if !ok {
		return
	}
	c := len(tab.tags)
	if c < 2*maxArray || c&(c-1) != 0 || len(tab.recs) != c {
		t.Fatalf("table of %d slots, %d tags", len(tab.recs), c)
	}
	mask := c - 1
	for i, r := range tab.recs {
		if r == nil {
			if tab.tags[i] != 0 {
				t.Fatalf("free slot %d has tag %#x", i, tab.tags[i])
			}
			continue
		}
		h := hashName(seed, r.name())
		if tab.tags[i] != tagOf(h) {
			t.Fatalf("%q at %d: tag %#x, want %#x", r.name(), i, tab.tags[i], tagOf(h))
		}
		for j := int(h) & mask; j != i; j = (j + 1) & mask {
			if tab.recs[j] == nil {
				t.Fatalf("%q at %d unreachable: free slot %d after its home", r.name(), i, j)
			}
		}
	}
}

// wrapsAround reports whether removing r from a hash table walks a
// cluster that wraps past the table's end: the backward shift's hardest case.
func wrapsAround(s *recordSet, r *record) bool {
	tab, ok := s.t.(*hashTable)
	if !ok {
		return false
	}
	i := slices.Index(tab.recs, r)
	mask := len(tab.recs) - 1
	for j := (i + 1) & mask; tab.recs[j] != nil; j = (j + 1) & mask {
		if j < i {
			return true
		}
	}
	return false
}

// TestRecordSetAgainstMap drives a recordSet and a map[string]*record with
// the same random adds, removes, lookups and iterations, from empty through
// growth to hashed tables and back down as they empty, and checks after
// every step that they hold the same records and that the table's invariants
// hold. Some cases mostly add, others mostly remove.
func TestRecordSetAgainstMap(t *testing.T) {
	seed := maphash.MakeSeed() // one per run, so rapid can shrink a failure
	wraps, hashedRemoves := 0, 0
	rapid.Check(t, func(t *rapid.T) {
		var s recordSet
		ref := make(map[string]*record)
		// Few letters: names share lengths and prefixes, so comparisons
		// go past the length check.
		names := rapid.SliceOfNDistinct(rapid.StringMatching(`[ab]{1,8}`), 1, 300, rapid.ID[string]).Draw(t, "names")
		addWeight := rapid.IntRange(1, 9).Draw(t, "addWeight")
		steps := rapid.IntRange(1, 1000).Draw(t, "steps")
		for range steps {
			name := rapid.SampledFrom(names).Draw(t, "name")
			op := rapid.IntRange(0, 11).Draw(t, "op")
			switch {
			case op < addWeight: // add when absent
				if ref[name] == nil {
					r := newRecord(0, name, "holder", 1, 0, 0)
					s.add(seed, r)
					ref[name] = r
				}
			case op < 10: // remove when present
				if r := ref[name]; r != nil {
					if _, hashed := s.t.(*hashTable); hashed {
						hashedRemoves++
						if wrapsAround(&s, r) {
							wraps++
						}
					}
					s.remove(seed, r)
					delete(ref, name)
				}
			case op == 10: // iterate
				var got []string
				for r := range s.all() {
					got = append(got, r.name())
					if ref[r.name()] != r {
						t.Fatalf("all yields %q, not the record added", r.name())
					}
				}
				if len(got) != len(ref) {
					t.Fatalf("all yields %d records, want %d: %s", len(got), len(ref), strings.Join(got, " "))
				}
			}
			// Look up the step's name, present or not, every time.
			if got := s.get(seed, name); got != ref[name] {
				t.Fatalf("get(%q) = %v, want %v", name, got, ref[name])
			}
			checkSet(t, seed, &s)
			if s.len() != len(ref) {
				t.Fatalf("len %d, want %d", s.len(), len(ref))
			}
		}
		for name, r := range ref {
			if s.get(seed, name) != r {
				t.Fatalf("%q lost", name)
			}
		}
	})
	// Not a timing matter: with thousands of removes from small hashed
	// tables, some clusters wrap; if none did, the test tested too little.
	if wraps == 0 || hashedRemoves == 0 {
		t.Fatalf("no remove walked a wrapped cluster (%d removes from hashed tables)", hashedRemoves)
	}
	t.Logf("%d removes from hashed tables, %d across the wrap-around", hashedRemoves, wraps)
}

// form names s's form: 0 empty, 1 a record, 2, 4 or 8 an array, and a
// hash table's slots.
func form(s *recordSet) int {
	slots, _ := s.shape()
	return slots
}

// A set grows through the forms as it fills, and shrinks back once it is a
// quarter full, to the zero value when empty.
func TestRecordSetSizes(t *testing.T) {
	seed := maphash.MakeSeed()
	var s recordSet
	var rs []*record
	grow := []int{1, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 32}
	for i, want := range grow {
		r := newRecord(0, strings.Repeat("x", i+1), "h", 1, 0, 0)
		s.add(seed, r)
		rs = append(rs, r)
		if form(&s) != want {
			t.Fatalf("%d records: form %d, want %d", i+1, form(&s), want)
		}
		checkSet(t, seed, &s)
	}
	// Left after each remove: 16 down to 0.
	shrink := []int{32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 8, 8, 8, 8, 2, 2, 0}
	for i, want := range shrink {
		s.remove(seed, rs[i])
		if form(&s) != want {
			t.Fatalf("%d records left: form %d, want %d", len(rs)-i-1, form(&s), want)
		}
		checkSet(t, seed, &s)
	}
	if s != (recordSet{}) {
		t.Fatalf("empty set is not the zero value: %+v", s)
	}
}

// A group of one lease costs no allocation beyond the group itself, one of
// two leases one more of 16 bytes, and a group stays in the 64-byte size
// class.
func TestSmallGroupAllocations(t *testing.T) {
	if s := unsafe.Sizeof(group{}); s > 64 {
		t.Fatalf("group is %d bytes; keep it within 64", s)
	}
	seed := maphash.MakeSeed()
	r1 := newRecord(0, "a", "h", 1, 0, 0)
	allocs := testing.AllocsPerRun(100, func() {
		g := &group{}
		g.leases.add(seed, r1)
		if g.leases.get(seed, "a") != r1 || g.leases.get(seed, "b") != nil {
			t.Fatal("lookup")
		}
		sink = g
	})
	if allocs != 1 {
		t.Fatalf("a group of one lease: %v allocations, want 1 (the group)", allocs)
	}
}

var sink any

// Every machine hashes lease names with its own seed, so the groups' sets
// iterate in a different order on every replica. Nothing observable may
// follow that order: two machines fed the same entries (groups large enough
// to hash, claims, revokes, expiries) give the same results, events,
// snapshots, listings and pages.
func TestOutputsIgnoreHashSeed(t *testing.T) {
	a, b := New(), New()
	a.RecordEvents(true)
	b.RecordEvents(true)
	rng := rand.New(rand.NewPCG(3, 4))
	for idx := uint64(1); idx <= 40; idx++ {
		var cmds []lease.Command
		for range 200 {
			k := key("ns", fmt.Sprintf("g%d", rng.IntN(3)), fmt.Sprintf("n%03d", rng.IntN(300)))
			if rng.IntN(4) == 0 {
				cmds = append(cmds, revoke(k, "h"))
			} else {
				cmds = append(cmds, claim(k, "h", time.Duration(1+rng.IntN(5))*time.Second))
			}
		}
		e := logentry.Entry{Kind: logentry.KindBatch, Time: time.Duration(idx) * 300 * time.Millisecond, Commands: cmds}
		if fmt.Sprint(a.Apply(idx, &e)) != fmt.Sprint(b.Apply(idx, &e)) {
			t.Fatalf("entry %d: results differ", idx)
		}
		if !slices.Equal(a.TakeEvents(), b.TakeEvents()) {
			t.Fatalf("entry %d: events differ", idx)
		}
		if !bytes.Equal(a.AppendSnapshot(nil), b.AppendSnapshot(nil)) {
			t.Fatalf("entry %d: snapshots differ", idx)
		}
		if !slices.Equal(a.List("", "", lease.Key{}, 0, 0), b.List("", "", lease.Key{}, 0, 0)) {
			t.Fatalf("entry %d: listings differ", idx)
		}
		q := PageQuery{Namespace: "ns", Limit: 7, After: key("ns", "g1", "n150")}
		if pa, pb := a.Page(q, 0), b.Page(q, 0); fmt.Sprint(pa) != fmt.Sprint(pb) {
			t.Fatalf("entry %d: pages differ:\n%v\n%v", idx, pa, pb)
		}
	}
	if a.Len() < 100 {
		t.Fatalf("only %d leases held: groups too small to hash", a.Len())
	}
}

// BenchmarkRecordSetGet looks names up in a set of n records, with
// scattered allocations as in a running replica: hits (an extend) and misses
// (a claim of a new name), at the fullest and emptiest loads a table has.
func BenchmarkRecordSetGet(b *testing.B) {
	var sizes []int
	for _, c := range []int{1 << 10, 1 << 17} {
		sizes = append(sizes, maxLoad(c)/2+1, maxLoad(c)) // just grown; fullest
	}
	for _, n := range sizes {
		seed := maphash.MakeSeed()
		var s recordSet
		names := make([]string, n)
		junk := make([][]byte, 0, n)
		for i := range names {
			names[i] = fmt.Sprintf("lease-%d", i)
			junk = append(junk, make([]byte, 64)) // records not adjacent in memory
			s.add(seed, newRecord(0, names[i], "holder-a", 1, 0, time.Minute))
		}
		fill := float64(n) / float64(form(&s))
		b.Run(fmt.Sprintf("n=%d/load=%.2f/hit", n, fill), func(b *testing.B) {
			for i := range b.N {
				if s.get(seed, names[i%n]) == nil {
					b.Fatal("missing")
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/load=%.2f/miss", n, fill), func(b *testing.B) {
			for i := range b.N {
				if s.get(seed, names[i%n]+"x") != nil {
					b.Fatal("found")
				}
			}
		})
		_ = junk
	}
}
