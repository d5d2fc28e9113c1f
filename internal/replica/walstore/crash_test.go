package walstore

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The crash test runs a child process (this test binary) that applies a
// seeded random sequence of Raft's log operations to a store and prints the
// number of operations acknowledged after each one; the parent SIGKILLs it
// at a random point (usually inside a write or its fsync), replays the same
// sequence in a model, and checks the reopened log is one the last
// acknowledged operation, or the one in progress, could have left.

const (
	crashDirEnv  = "WALSTORE_CRASH_DIR"
	crashSeedEnv = "WALSTORE_CRASH_SEED"
)

type crashOp struct {
	kind  byte // 'a' append, 't' truncate tail, 'h' compact head
	n     uint64
	index uint64 // first index of an append; cut point of a truncation; last of a compaction
	term  uint64
}

// model is the log as a map from index to term over [first, last].
type model struct {
	first, last uint64
	terms       map[uint64]uint64
	term        uint64
}

func newModel() *model { return &model{terms: map[uint64]uint64{}, term: 1} }

// next draws the next operation from rng and applies it to m.
func (m *model) next(rng *rand.Rand) crashOp {
	switch r := rng.IntN(10); {
	case r < 7 || m.last <= m.first+1:
		op := crashOp{kind: 'a', n: uint64(1 + rng.IntN(30)), index: m.last + 1, term: m.term}
		if m.last == 0 {
			op.index, m.first = 1, 1
		}
		for i := op.index; i < op.index+op.n; i++ {
			m.terms[i] = op.term
		}
		m.last = op.index + op.n - 1
		return op
	case r < 9:
		cut := m.last - uint64(rng.IntN(int(min(m.last-m.first, 40))))
		for i := cut; i <= m.last; i++ {
			delete(m.terms, i)
		}
		m.last = cut - 1
		m.term++
		return crashOp{kind: 't', index: cut}
	default:
		to := m.first + uint64(rng.IntN(int(m.last-m.first)))
		for i := m.first; i <= to; i++ {
			delete(m.terms, i)
		}
		m.first = to + 1
		return crashOp{kind: 'h', index: to}
	}
}

func (m *model) clone() *model {
	c := *m
	c.terms = make(map[uint64]uint64, len(m.terms))
	for k, v := range m.terms {
		c.terms[k] = v
	}
	return &c
}

// TestCrashChild is the child process; it does nothing unless started by
// TestKillMidWrite.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as TestKillMidWrite's child")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	s, err := Open(dir, small)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	m := newModel()
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(30 * time.Second)
	for acked := 1; time.Now().Before(deadline); acked++ {
		op := m.next(rng)
		switch op.kind {
		case 'a':
			err = s.StoreLogs(entries(op.index, op.index+op.n-1, op.term))
		case 't':
			err = s.DeleteRange(op.index, 1<<62)
		case 'h':
			f, _ := s.FirstIndex()
			err = s.DeleteRange(f, op.index)
		}
		if err != nil {
			fmt.Println("op:", err)
			os.Exit(2)
		}
		fmt.Fprintln(out, acked)
		out.Flush()
	}
	os.Exit(0)
}

func TestKillMidWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	must(t, err)
	const rounds = 24
	midOp := 0
	for round := range rounds {
		seed := uint64(round + 1)
		dir := filepath.Join(t.TempDir(), "log")
		cmd := exec.Command(exe, "-test.run", "^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10))
		stdout, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		killAfter := 1 + rand.IntN(200)
		sc := bufio.NewScanner(stdout)
		acked := 0
		for sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			acked = n
			if acked == killAfter {
				// A random delay lands the kill at a random point of the
				// next operations (fault timing, not a wait for a condition).
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		if checkCrashState(t, round, seed, dir, acked) {
			midOp++
		}
	}
	// How many kills landed inside an operation (its effect part-done or
	// done but not acknowledged), the case this test exists for.
	t.Logf("%d of %d kills left a state past the last acknowledged operation", midOp, rounds)
}

// checkCrashState reopens dir and checks its log against the model after
// acked operations, allowing any state the next operation could have left
// part-way.
func checkCrashState(t *testing.T, round int, seed uint64, dir string, acked int) (midOp bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	m := newModel()
	for range acked {
		m.next(rng)
	}
	before := m.clone()
	op := m.next(rng)
	after := m

	s, err := Open(dir, small)
	if err != nil {
		t.Fatalf("round %d (acked %d, next %c): reopen: %v", round, acked, op.kind, err)
	}
	defer s.Close()
	first, last := bounds(t, s)
	ok := func(ref *model, lo, hi uint64, firsts ...uint64) bool {
		if last < lo || last > hi {
			return false
		}
		for _, f := range firsts {
			if first == f {
				return true
			}
		}
		return false
	}
	var good bool
	switch op.kind {
	case 'a': // any prefix of the batch
		good = ok(after, before.last, after.last, before.first, after.first)
	case 't': // any point between the cut and the old end
		good = ok(before, op.index-1, before.last, before.first)
	case 'h':
		good = ok(before, before.last, before.last, before.first, after.first)
	}
	if !good {
		t.Fatalf("round %d (acked %d, next %c %d): bounds %d,%d; before %d,%d after %d,%d",
			round, acked, op.kind, op.index, first, last, before.first, before.last, after.first, after.last)
	}
	ref := after
	if op.kind != 'a' {
		ref = before
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil || !sameLog(&got, entry(i, ref.terms[i])) {
			t.Fatalf("round %d (acked %d): GetLog(%d) = %v, term %d; want term %d", round, acked, i, err, got.Term, ref.terms[i])
		}
	}
	// The recovered store takes appends and survives another reopen.
	must(t, s.StoreLogs(entries(last+1, last+3, 99)))
	must(t, s.Close())
	s2, err := Open(dir, small)
	if err != nil {
		t.Fatalf("round %d: reopen after append: %v", round, err)
	}
	defer s2.Close()
	if f, l := bounds(t, s2); f != first || l != last+3 {
		t.Fatalf("round %d: after append and reopen bounds %d,%d, want %d,%d", round, f, l, first, last+3)
	}
	return first != before.first || last != before.last
}
