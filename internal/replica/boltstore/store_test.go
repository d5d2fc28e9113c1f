package boltstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// No goleak here: the store starts no goroutines, and VerifyTestMain would
// also run inside `go test -fuzz` worker processes, where its leak retries
// outlast the fuzz coordinator's deadline.

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

func entry(i, term uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       []byte{byte(i), byte(term), 0xAB},
		Extensions: []byte("ext"),
		AppendedAt: time.Unix(1700000000, int64(i)).In(time.FixedZone("X", 3600)),
	}
}

func entries(lo, hi, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := lo; i <= hi; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

func sameLog(a, b *raft.Log) bool {
	_, za := a.AppendedAt.Zone()
	_, zb := b.AppendedAt.Zone()
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && za == zb && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func bounds2(t *testing.T, s raft.LogStore) (uint64, uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

// checkRange asserts that exactly the indexes in want (of 1..upto) are
// readable with the given term.
func checkRange(t *testing.T, s raft.LogStore, upto uint64, want map[uint64]uint64) {
	t.Helper()
	for i := uint64(1); i <= upto; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		term, ok := want[i]
		switch {
		case ok && err != nil:
			t.Errorf("GetLog(%d): %v", i, err)
		case ok && !sameLog(&got, entry(i, term)):
			t.Errorf("GetLog(%d) = %+v, want %+v", i, got, entry(i, term))
		case !ok && !errors.Is(err, raft.ErrLogNotFound):
			t.Errorf("GetLog(%d) err = %v, want ErrLogNotFound", i, err)
		}
	}
}

func span(lo, hi, term uint64) map[uint64]uint64 {
	m := map[uint64]uint64{}
	for i := lo; i <= hi; i++ {
		m[i] = term
	}
	return m
}

func TestEmpty(t *testing.T) {
	s, _ := openTemp(t)
	if f, l := bounds2(t, s); f != 0 || l != 0 {
		t.Fatalf("empty store bounds = %d,%d", f, l)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on empty = %v", err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripEveryField(t *testing.T) {
	s, path := openTemp(t)
	cases := []*raft.Log{
		entry(1, 1),
		{Index: 2, Term: 1, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{7}, 70000)},
		{Index: 3, Term: 2, Type: raft.LogNoop},                                   // nil slices, zero time
		{Index: 4, Term: 1<<64 - 1, Type: raft.LogBarrier, Extensions: []byte{1}}, // only extensions
		{Index: 5, Term: 3, Type: raft.LogType(200), Data: []byte{0}, AppendedAt: time.Now()},
		{Index: 6, Term: 3, Type: raft.LogCommand, AppendedAt: time.Unix(-5, 9).UTC()},
	}
	for _, l := range cases {
		if err := s.StoreLog(l); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store) {
		for _, want := range cases {
			var got raft.Log
			if err := s.GetLog(want.Index, &got); err != nil {
				t.Fatal(err)
			}
			if !sameLog(&got, want) {
				t.Errorf("index %d: got %+v, want %+v", want.Index, got, want)
			}
			if (want.Data == nil) != (got.Data == nil) || (want.Extensions == nil) != (got.Extensions == nil) {
				t.Errorf("index %d: nil-ness of slices changed", want.Index)
			}
		}
	}
	check(s)
	check(reopen(t, s, path))
}

// The returned slices must not alias each other or bbolt's memory.
func TestGetLogOwnsItsBytes(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.StoreLogs(entries(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	var a raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatal(err)
	}
	a.Data = append(a.Data, 9, 9, 9, 9)
	a.Data[0] = 0xFF
	if !bytes.Equal(a.Extensions, []byte("ext")) {
		t.Fatalf("appending to Data changed Extensions: %q", a.Extensions)
	}
	var b raft.Log
	if err := s.GetLog(1, &b); err != nil {
		t.Fatal(err)
	}
	if !sameLog(&b, entry(1, 1)) {
		t.Fatalf("stored entry changed by caller's edit: %+v", b)
	}
}

func TestDeleteRange(t *testing.T) {
	cases := []struct {
		name        string
		del         [2]uint64
		first, last uint64
		remain      map[uint64]uint64
	}{
		{name: "head", del: [2]uint64{1, 4}, first: 5, last: 10, remain: span(5, 10, 1)},
		{name: "tail", del: [2]uint64{8, 10}, first: 1, last: 7, remain: span(1, 7, 1)},
		{name: "tail-past-last", del: [2]uint64{8, 100}, first: 1, last: 7, remain: span(1, 7, 1)},
		{name: "middle", del: [2]uint64{4, 6}, first: 1, last: 10, remain: func() map[uint64]uint64 {
			m := span(1, 3, 1)
			for k, v := range span(7, 10, 1) {
				m[k] = v
			}
			return m
		}()},
		{name: "all", del: [2]uint64{1, 10}, first: 0, last: 0, remain: map[uint64]uint64{}},
		{name: "none-beyond", del: [2]uint64{11, 20}, first: 1, last: 10, remain: span(1, 10, 1)},
		{name: "single", del: [2]uint64{10, 10}, first: 1, last: 9, remain: span(1, 9, 1)},
		{name: "inverted", del: [2]uint64{5, 4}, first: 1, last: 10, remain: span(1, 10, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path := openTemp(t)
			if err := s.StoreLogs(entries(1, 10, 1)); err != nil {
				t.Fatal(err)
			}
			if f, l := bounds2(t, s); f != 1 || l != 10 {
				t.Fatalf("after store bounds = %d,%d", f, l)
			}
			if err := s.DeleteRange(c.del[0], c.del[1]); err != nil {
				t.Fatal(err)
			}
			if f, l := bounds2(t, s); f != c.first || l != c.last {
				t.Fatalf("after delete %v bounds = %d,%d want %d,%d", c.del, f, l, c.first, c.last)
			}
			checkRange(t, s, 12, c.remain)
			s = reopen(t, s, path)
			if f, l := bounds2(t, s); f != c.first || l != c.last {
				t.Fatalf("after reopen bounds = %d,%d want %d,%d", f, l, c.first, c.last)
			}
			checkRange(t, s, 12, c.remain)
		})
	}
}

// TestRaftWAL31 is the sequence that broke raft-wal v0.4.0: a tail
// truncation, a restart, new entries at a new term, another restart.
func TestRaftWAL31(t *testing.T) {
	s, path := openTemp(t)
	if err := s.StoreLogs(entries(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	if f, l := bounds2(t, s); f != 1 || l != 7 {
		t.Fatalf("after truncate+reopen bounds = %d,%d want 1,7", f, l)
	}
	if err := s.StoreLogs(entries(8, 12, 2)); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	if f, l := bounds2(t, s); f != 1 || l != 12 {
		t.Fatalf("after append+reopen bounds = %d,%d want 1,12", f, l)
	}
	want := span(1, 7, 1)
	for k, v := range span(8, 12, 2) {
		want[k] = v
	}
	checkRange(t, s, 14, want)
}

func TestStable(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get(missing) err = %v, want text \"not found\"", err)
	}
	if _, err := s.GetUint64([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64(missing) err = %v, want text \"not found\"", err)
	}
	must(t, s.Set([]byte("k"), []byte("v1")))
	must(t, s.Set([]byte("k"), []byte("v2")))
	must(t, s.Set([]byte("empty"), []byte{}))
	must(t, s.SetUint64([]byte("CurrentTerm"), 42))
	must(t, s.SetUint64([]byte("max"), 1<<64-1))
	if err := s.Set(nil, []byte("x")); err == nil {
		t.Fatal("Set with an empty key succeeded")
	}
	check := func(s *Store) {
		t.Helper()
		if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
			t.Fatalf("Get(k) = %q, %v", v, err)
		}
		if v, err := s.Get([]byte("empty")); err != nil || v == nil || len(v) != 0 {
			t.Fatalf("Get(empty) = %v, %v; want a present empty value", v, err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
			t.Fatalf("GetUint64(CurrentTerm) = %d, %v", v, err)
		}
		if v, err := s.GetUint64([]byte("max")); err != nil || v != 1<<64-1 {
			t.Fatalf("GetUint64(max) = %d, %v", v, err)
		}
		if _, err := s.GetUint64([]byte("k")); err == nil {
			t.Fatal("GetUint64 of a 2-byte value succeeded")
		}
	}
	check(s)
	check(reopen(t, s, path))
}

// TestStableSharesFileWithLogs: the two stores live in one file and do not
// see each other's keys.
func TestStableSharesFileWithLogs(t *testing.T) {
	s, _ := openTemp(t)
	must(t, s.StoreLogs(entries(1, 3, 1)))
	must(t, s.SetUint64([]byte("LastVoteTerm"), 3))
	if f, l := bounds2(t, s); f != 1 || l != 3 {
		t.Fatalf("bounds = %d,%d", f, l)
	}
	if _, err := s.Get(indexKey(1)); err == nil {
		t.Fatal("a log key is visible in the stable store")
	}
}

// TestMatchesInmemStore applies one random sequence of the operations Raft
// issues (append at the tail, truncate the tail, compact the head) to this
// store and to raft.InmemStore, raft's reference implementation, and
// compares every observable result, including after reopening.
func TestMatchesInmemStore(t *testing.T) {
	s, path := openTemp(t)
	ref := raft.NewInmemStore()
	rng := rand.New(rand.NewPCG(1, 2))
	term := uint64(1)
	for step := 0; step < 300; step++ {
		_, last := bounds2(t, ref)
		first, _ := bounds2(t, ref)
		switch op := rng.IntN(10); {
		case op < 6: // append a batch
			n := uint64(1 + rng.IntN(64))
			batch := entries(last+1, last+n, term)
			must(t, ref.StoreLogs(batch))
			must(t, s.StoreLogs(batch))
		case op < 8 && last > first: // truncate a tail (conflicting entries)
			from := first + 1 + uint64(rng.IntN(int(last-first)))
			must(t, ref.DeleteRange(from, last))
			must(t, s.DeleteRange(from, last))
			term++
		case last > first: // compact a head (after a snapshot)
			to := first + uint64(rng.IntN(int(last-first)))
			must(t, ref.DeleteRange(first, to))
			must(t, s.DeleteRange(first, to))
		}
		if step%50 == 49 {
			s = reopen(t, s, path)
		}
		rf, rl := bounds2(t, ref)
		sf, sl := bounds2(t, s)
		if rf != sf || rl != sl {
			t.Fatalf("step %d: bounds %d,%d; InmemStore %d,%d", step, sf, sl, rf, rl)
		}
		for i := sf - min(sf, 2); i <= sl+2; i++ {
			var a, b raft.Log
			ea, eb := ref.GetLog(i, &a), s.GetLog(i, &b)
			if (ea == nil) != (eb == nil) || (ea == nil && !sameLog(&a, &b)) {
				t.Fatalf("step %d index %d: got %+v (%v); InmemStore %+v (%v)", step, i, b, eb, a, ea)
			}
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
