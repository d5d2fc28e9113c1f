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

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
	"pgregory.net/rapid"
)

// checkSet verifies a recordSet's table: its length counts its records, a
// small table is dense, a hashed one has a free slot and every record in it
// is reachable from its home slot without crossing a free one (what lookups
// rely on, and what deletion must preserve), and no name is there twice.
func checkSet(t fataler, seed maphash.Seed, s *recordSet) {
	t.Helper()
	tab := s.slots[:cap(s.slots)]
	if len(tab)&(len(tab)-1) != 0 {
		t.Fatalf("table of %d slots", len(tab))
	}
	n := 0
	seen := make(map[string]bool)
	for i, r := range tab {
		if r == nil {
			continue
		}
		n++
		if seen[r.name()] {
			t.Fatalf("%q twice", r.name())
		}
		seen[r.name()] = true
		if len(tab) <= smallSet {
			if i >= len(s.slots) {
				t.Fatalf("small table: record at %d, past its %d records", i, len(s.slots))
			}
			continue
		}
		mask := len(tab) - 1
		for j := int(hashName(seed, r.name())) & mask; j != i; j = (j + 1) & mask {
			if tab[j] == nil {
				t.Fatalf("%q at %d unreachable: free slot %d after its home", r.name(), i, j)
			}
		}
	}
	if n != s.len() {
		t.Fatalf("%d records in the table, len %d", n, s.len())
	}
	if len(tab) > smallSet && n > maxLoad(len(tab)) {
		t.Fatalf("%d records in %d slots", n, len(tab))
	}
	if n == 0 && s.slots != nil {
		t.Fatalf("empty set keeps a table of %d slots", len(tab))
	}
}

// wrapsAround reports whether removing r from a hashed table walks a
// cluster that wraps past the table's end: the backward shift's hardest case.
func wrapsAround(s *recordSet, r *record) bool {
	tab := s.slots[:cap(s.slots)]
	if len(tab) <= smallSet {
		return false
	}
	i := slices.Index(tab, r)
	mask := len(tab) - 1
	for j := (i + 1) & mask; tab[j] != nil; j = (j + 1) & mask {
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
					if cap(s.slots) > smallSet {
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

// A set of one or two leases is one small allocation, and grows and shrinks
// back through the same sizes.
func TestRecordSetSizes(t *testing.T) {
	seed := maphash.MakeSeed()
	var s recordSet
	var rs []*record
	for i, want := range []int{1, 2, 4, 8, 8, 8, 16, 16, 16} {
		r := newRecord(0, strings.Repeat("x", i+1), "h", 1, 0, 0)
		s.add(seed, r)
		rs = append(rs, r)
		if cap(s.slots) != want {
			t.Fatalf("%d records: %d slots, want %d", i+1, cap(s.slots), want)
		}
	}
	for i, want := range []int{16, 16, 16, 16, 8, 8, 2, 2, 0} {
		s.remove(seed, rs[i])
		if cap(s.slots) != want {
			t.Fatalf("%d records left: %d slots, want %d", len(rs)-i-1, cap(s.slots), want)
		}
		checkSet(t, seed, &s)
	}
}

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
		fill := float64(n) / float64(cap(s.slots))
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
