package walstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openTemp(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "log")
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func reopen(t testing.TB, s *Store, dir string, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// entry is a deterministic function of (index, term), so a reader can check
// any entry it finds against what was written.
func entry(i, term uint64) *raft.Log {
	data := bytes.Repeat([]byte{byte(i), byte(term), 0xAB}, 1+int(i%7)*20)
	return &raft.Log{
		Index:      i,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       data,
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
		a.AppendedAt.Equal(b.AppendedAt) && za == zb
}

func bounds(t testing.TB, s raft.LogStore) (uint64, uint64) {
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

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// small segments make every test cross segment boundaries.
var small = Options{SegmentBytes: 2048}

// TestMatchesInmemStore applies one random sequence of the operations Raft
// issues (append at the tail, truncate the tail, compact the head, delete
// everything) to this store and to raft.InmemStore, raft's reference
// implementation, and compares every observable result, including after
// reopening.
func TestMatchesInmemStore(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		s, dir := openTemp(t, small)
		ref := raft.NewInmemStore()
		rng := rand.New(rand.NewPCG(seed, 2))
		term := uint64(1)
		for step := 0; step < 400; step++ {
			first, last := bounds(t, ref)
			switch op := rng.IntN(20); {
			case op < 12 || last == 0: // append a batch
				n := uint64(1 + rng.IntN(40))
				start := last + 1
				if last == 0 {
					start = 1 + uint64(rng.IntN(1000)) // after a snapshot install
				}
				batch := entries(start, start+n-1, term)
				must(t, ref.StoreLogs(batch))
				must(t, s.StoreLogs(batch))
			case op < 15 && last > first: // truncate a tail (conflicting entries)
				from := first + 1 + uint64(rng.IntN(int(last-first)))
				must(t, ref.DeleteRange(from, last))
				must(t, s.DeleteRange(from, last))
				term++
			case op < 19 && last > first: // compact a head (after a snapshot)
				to := first + uint64(rng.IntN(int(last-first)))
				must(t, ref.DeleteRange(first, to))
				must(t, s.DeleteRange(first, to))
			default: // delete everything (after a snapshot install)
				must(t, ref.DeleteRange(first, last))
				must(t, s.DeleteRange(first, last))
			}
			if rng.IntN(25) == 0 {
				s = reopen(t, s, dir, small)
			}
			rf, rl := bounds(t, ref)
			sf, sl := bounds(t, s)
			if rf != sf || rl != sl {
				t.Fatalf("seed %d step %d: bounds %d,%d; InmemStore %d,%d", seed, step, sf, sl, rf, rl)
			}
			for i := sf - min(sf, 2); i <= sl+2; i++ {
				var a, b raft.Log
				ea, eb := ref.GetLog(i, &a), s.GetLog(i, &b)
				if (ea == nil) != (eb == nil) || (ea == nil && !sameLog(&a, &b)) {
					t.Fatalf("seed %d step %d index %d: got %+v (%v); InmemStore %+v (%v)", seed, step, i, b, eb, a, ea)
				}
			}
		}
	}
}

// TestRaftWAL31 is the sequence that broke raft-wal v0.4.0: a tail
// truncation, a restart, new entries at a new term, another restart; here
// also with the truncation point at a segment boundary and inside one.
func TestRaftWAL31(t *testing.T) {
	for _, cut := range []uint64{8, 2, 30} {
		s, dir := openTemp(t, small)
		must(t, s.StoreLogs(entries(1, 20, 1)))
		must(t, s.StoreLogs(entries(21, 40, 1)))
		must(t, s.DeleteRange(cut, 40))
		s = reopen(t, s, dir, small)
		if f, l := bounds(t, s); f != 1 || l != cut-1 {
			t.Fatalf("cut %d: after truncate+reopen bounds = %d,%d", cut, f, l)
		}
		must(t, s.StoreLogs(entries(cut, cut+12, 2)))
		s = reopen(t, s, dir, small)
		if f, l := bounds(t, s); f != 1 || l != cut+12 {
			t.Fatalf("cut %d: after append+reopen bounds = %d,%d", cut, f, l)
		}
		for i := uint64(1); i <= cut+14; i++ {
			var got raft.Log
			err := s.GetLog(i, &got)
			term := uint64(1)
			if i >= cut {
				term = 2
			}
			switch {
			case i > cut+12:
				if !errors.Is(err, raft.ErrLogNotFound) {
					t.Fatalf("cut %d: GetLog(%d) = %v, want not found", cut, i, err)
				}
			case err != nil || !sameLog(&got, entry(i, term)):
				t.Fatalf("cut %d: GetLog(%d) = %+v, %v; want term %d", cut, i, got, err, term)
			}
		}
	}
}

// TestTornTail cuts the last batch's bytes at every length and garbles
// them: each reopen must keep every earlier batch, drop the torn one, and
// take new appends at the same index.
func TestTornTail(t *testing.T) {
	s, dir := openTemp(t, Options{})
	must(t, s.StoreLogs(entries(1, 5, 1)))
	seg := s.segs[0].f.Name()
	good := s.segs[0].size
	must(t, s.StoreLogs(entries(6, 8, 1)))
	full := s.segs[0].size
	must(t, s.Close())
	orig, err := os.ReadFile(seg)
	must(t, err)
	damage := map[string]func(n int64) []byte{
		"cut": func(n int64) []byte { return orig[:n] },
		"zeros": func(n int64) []byte {
			b := bytes.Clone(orig)
			clear(b[n:])
			return b
		},
		"flip": func(n int64) []byte {
			b := bytes.Clone(orig)
			b[n] ^= 0x40
			return b
		},
	}
	for name, fn := range damage {
		for n := good; n < full; n++ {
			must(t, os.WriteFile(seg, fn(n), 0o600))
			s2, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("%s at %d: open: %v", name, n, err)
			}
			_, l := bounds(t, s2)
			// Damage inside the last batch may leave some of its records
			// whole (a write is not atomic); never any after the damage.
			if l < 5 || l > 8 {
				t.Fatalf("%s at %d: last = %d, want 5..8", name, n, l)
			}
			for i := uint64(1); i <= l; i++ {
				var got raft.Log
				if err := s2.GetLog(i, &got); err != nil || !sameLog(&got, entry(i, 1)) {
					t.Fatalf("%s at %d: GetLog(%d): %v", name, n, i, err)
				}
			}
			// One new entry, the size of the one it replaces: any valid
			// old record left after it would read as the next entry.
			must(t, s2.StoreLogs(entries(l+1, l+1, 2)))
			must(t, s2.Close())
			s3, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("%s at %d: reopen after append: %v", name, n, err)
			}
			if f, l3 := bounds(t, s3); f != 1 || l3 != l+1 {
				t.Fatalf("%s at %d: bounds after append = %d,%d, want 1,%d", name, n, f, l3, l+1)
			}
			must(t, s3.Close())
		}
	}
}

// TestCorruptionBeforeTheTailFails: a bad record in a segment that is not
// the last cannot be a torn write, and dropping it would lose acknowledged
// entries, so Open refuses.
func TestCorruptionBeforeTheTailFails(t *testing.T) {
	s, dir := openTemp(t, small)
	for i := uint64(1); i <= 60; i += 10 {
		must(t, s.StoreLogs(entries(i, i+9, 1)))
	}
	if len(s.segs) < 2 {
		t.Fatalf("want several segments, have %d", len(s.segs))
	}
	first := s.segs[0].f.Name()
	must(t, s.Close())
	b, err := os.ReadFile(first)
	must(t, err)
	b[20] ^= 1
	must(t, os.WriteFile(first, b, 0o600))
	if _, err := Open(dir, small); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

// TestNonConsecutive: a batch with a gap or one that overlaps the log is
// refused; a batch past a gap (Raft after a snapshot install, when a wrapper
// hid IsMonotonic) replaces the whole log, so the store never holds a gap.
func TestNonConsecutive(t *testing.T) {
	s, dir := openTemp(t, small)
	must(t, s.StoreLogs(entries(5, 60, 1)))
	if err := s.StoreLogs([]*raft.Log{entry(61, 1), entry(63, 1)}); err == nil {
		t.Fatal("batch with a gap accepted")
	}
	if err := s.StoreLogs(entries(60, 61, 1)); err == nil {
		t.Fatal("batch overlapping the log accepted")
	}
	if f, l := bounds(t, s); f != 5 || l != 60 {
		t.Fatalf("bounds = %d,%d", f, l)
	}
	must(t, s.StoreLogs(entries(100, 102, 2)))
	if f, l := bounds(t, s); f != 100 || l != 102 {
		t.Fatalf("after an append past a gap bounds = %d,%d, want 100,102", f, l)
	}
	s = reopen(t, s, dir, small)
	if f, l := bounds(t, s); f != 100 || l != 102 {
		t.Fatalf("after reopen bounds = %d,%d, want 100,102", f, l)
	}
	var got raft.Log
	if err := s.GetLog(60, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(60) = %v, want not found", err)
	}
}

// TestInterruptedDeleteAll: a crash after the head was moved past the end
// but before every segment was removed reopens as an empty log.
func TestInterruptedDeleteAll(t *testing.T) {
	s, dir := openTemp(t, small)
	must(t, s.StoreLogs(entries(1, 50, 1)))
	must(t, s.writeHead(51))
	must(t, s.Close())
	s2, err := Open(dir, small)
	must(t, err)
	defer s2.Close()
	if f, l := bounds(t, s2); f != 0 || l != 0 {
		t.Fatalf("bounds = %d,%d, want an empty log", f, l)
	}
	must(t, s2.StoreLogs(entries(70, 71, 2)))
}

// TestConcurrentReads: Raft reads entries for replication while the leader
// loop appends and truncates; a read sees a whole, correct entry or
// ErrLogNotFound, never a partial write (run with -race).
func TestConcurrentReads(t *testing.T) {
	s, _ := openTemp(t, small)
	must(t, s.StoreLogs(entries(1, 10, 1)))
	done := make(chan struct{})
	errs := make(chan error, 4)
	for r := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				_, last := bounds(t, s)
				i := 1 + uint64(rng.IntN(int(last)+5))
				var got raft.Log
				err := s.GetLog(i, &got)
				if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
					errs <- err
					return
				}
				if err == nil && !sameLog(&got, entry(i, got.Term)) {
					errs <- errors.New("torn or wrong entry read")
					return
				}
			}
		}()
	}
	term := uint64(1)
	for step := range 200 {
		f, l := bounds(t, s)
		switch {
		case step%10 == 9 && l > f+5:
			term++
			must(t, s.DeleteRange(l-3, l))
		case step%25 == 24 && l > f+20:
			must(t, s.DeleteRange(f, f+5))
		default:
			must(t, s.StoreLogs(entries(l+1, l+5, term)))
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
