package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Servers in a child process
//
// With Options.ServerProcess set, each target whose type can be split
// (attachable) runs its whole cluster in a child process, so the report's
// max RSS is the servers' own peak (VmHWM of the child), not the harness
// process's mix of servers, clients and load generator. The child is the same
// binary re-executed (`leasehold bench-server --target X --dir D`, or the
// test binary with an environment variable) and runs ServeChild:
//
//	child -> parent: {"endpoints":[...]}            once the cluster has a leader
//	                 {"error":"..."}                if it could not start
//	parent -> child: "stats N"                       one line per request
//	child -> parent: {"seq":N,"stats":{...}}         or {"seq":N,"error":"..."}
//	parent closes stdin: the child stops its cluster and exits.
//
// The child is killed if it has not exited 30 s after stdin closed, and on
// Linux it gets SIGKILL when the parent dies (Pdeathsig), so no server
// outlives the harness; it ignores SIGINT so that a ctrl-c in the terminal
// reaches only the parent, which then stops it in order.

// attachable targets can run their cluster elsewhere: Endpoints (after
// Start) are what a session needs; Attach gives them to a fresh, unstarted
// target in the parent, which then only makes sessions.
type attachable interface {
	Target
	Endpoints() []string
	Attach(endpoints []string)
}

type childHello struct {
	Endpoints []string `json:"endpoints,omitempty"`
	Error     string   `json:"error,omitempty"`
}

type childReply struct {
	Seq   uint64 `json:"seq"`
	Stats *Stats `json:"stats,omitempty"`
	Error string `json:"error,omitempty"`
}

// ServeChild is the child side: it starts target name's cluster under dir,
// reports its endpoints on out, answers stats requests from in, and stops the
// cluster when in reaches EOF (or ctx ends).
func ServeChild(ctx context.Context, name, dir string, in io.Reader, out io.Writer) (err error) {
	signal.Ignore(os.Interrupt)
	fs, err := lookup([]string{name})
	if err != nil {
		return err
	}
	t, ok := fs[0]().(attachable)
	if !ok {
		return fmt.Errorf("bench: target %s cannot run in a child process", name)
	}
	enc := json.NewEncoder(out)
	// LEASEHOLD_BENCH_CPUPROFILE=FILE profiles the servers (leasehold bench
	// --cpuprofile sets it), from start to stop.
	if f := os.Getenv("LEASEHOLD_BENCH_CPUPROFILE"); f != "" {
		pf, err := os.Create(f)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); err = errors.Join(err, pf.Close()) }()
	}
	defer func() { err = errors.Join(err, t.Stop()) }()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = t.Start(startCtx, dir)
	cancel()
	if err != nil {
		enc.Encode(childHello{Error: err.Error()})
		return err
	}
	if err := enc.Encode(childHello{Endpoints: t.Endpoints()}); err != nil {
		return err
	}
	lines := make(chan string)
	go func() { // ends at EOF of in: the parent closed it or died
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		var line string
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			line = l
		}
		seqStr, ok := strings.CutPrefix(line, "stats ")
		if !ok {
			continue
		}
		seq, _ := strconv.ParseUint(seqStr, 10, 64)
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := t.Stats(sctx)
		cancel()
		rep := childReply{Seq: seq, Stats: &st}
		if err != nil {
			rep = childReply{Seq: seq, Error: err.Error()}
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
}

// childTarget runs inner's cluster in a child process made by mk.
type childTarget struct {
	inner attachable
	mk    func(target, dataDir string) *exec.Cmd

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte // stdout lines after the hello
	stderr *tailBuffer
	exited chan struct{}

	mu  sync.Mutex // one stats request at a time
	seq uint64
}

func (t *childTarget) Name() string { return t.inner.Name() }

func (t *childTarget) Start(ctx context.Context, dataDir string) error {
	cmd := t.mk(t.inner.Name(), dataDir)
	setChildAttrs(cmd)
	t.stderr = &tailBuffer{max: 4096}
	cmd.Stderr = t.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: server process: %w", t.Name(), err)
	}
	t.cmd, t.stdin, t.exited = cmd, stdin, make(chan struct{})
	t.lines = make(chan []byte, 16)
	hello := make(chan []byte, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(t.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		first := true
		for sc.Scan() {
			b := bytes.Clone(sc.Bytes())
			if first {
				hello <- b
				first = false
				continue
			}
			select {
			case t.lines <- b:
			default: // nobody waits for this (late) reply
			}
		}
		if first {
			close(hello)
		}
	}()
	// Wait closes stdout, so only once everything on it has been read.
	go func() { <-readDone; cmd.Wait(); close(t.exited) }()
	select {
	case b, ok := <-hello:
		if !ok {
			return fmt.Errorf("%s: server process exited before it was ready: %s", t.Name(), t.stderr.String())
		}
		var h childHello
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("%s: server process said %q: %w", t.Name(), b, err)
		}
		if h.Error != "" {
			return fmt.Errorf("%s: server process: %s", t.Name(), h.Error)
		}
		t.inner.Attach(h.Endpoints)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for the server process: %w", t.Name(), ctx.Err())
	}
}

func (t *childTarget) NewSession(ctx context.Context) (Session, error) {
	return t.inner.NewSession(ctx)
}

// Stats asks the child, and adds the child's peak RSS (VmHWM).
func (t *childTarget) Stats(ctx context.Context) (Stats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cmd == nil {
		return Stats{}, errors.New(t.Name() + ": not started")
	}
	t.seq++
	if _, err := fmt.Fprintf(t.stdin, "stats %d\n", t.seq); err != nil {
		return Stats{}, fmt.Errorf("%s: server process: %w", t.Name(), err)
	}
	for {
		select {
		case b, ok := <-t.lines:
			if !ok {
				return Stats{}, fmt.Errorf("%s: server process exited: %s", t.Name(), t.stderr.String())
			}
			var r childReply
			if err := json.Unmarshal(b, &r); err != nil || r.Seq != t.seq {
				continue // a late answer to an earlier request
			}
			if r.Error != "" {
				return Stats{}, errors.New(r.Error)
			}
			st := *r.Stats
			st.ServerRSSBytes = procStatusBytes(t.cmd.Process.Pid, "VmHWM:")
			return st, nil
		case <-ctx.Done():
			return Stats{}, ctx.Err()
		}
	}
}

// Stop closes the child's stdin and waits for it to stop its cluster; it
// kills the child if that takes more than 30 s.
func (t *childTarget) Stop() error {
	if t.cmd == nil {
		return nil
	}
	t.stdin.Close()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-t.exited:
	case <-timer.C:
		t.cmd.Process.Kill()
		<-t.exited
		return fmt.Errorf("%s: server process did not stop in 30 s; killed", t.Name())
	}
	if st := t.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("%s: server process: %v: %s", t.Name(), st, t.stderr.String())
	}
	return nil
}

// procStatusBytes reads a "kB" field of /proc/<pid>/status, 0 if missing.
func procStatusBytes(pid int, field string) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// tailBuffer keeps the last max bytes written (the child's stderr, for
// error messages).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append([]byte(nil), w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.b))
}
