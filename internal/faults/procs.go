//go:build linux

package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/lease"
)

// Process faults: a pause (SIGSTOP/SIGCONT) stops a whole server at once,
// its Raft goroutines, its gRPC handlers and its clock readings alike, which
// no in-process hook can do. They need the servers as separate `leasehold
// server` processes, built once per test binary (ServerBinary).

func init() {
	Kinds = append(Kinds, Kind{Name: "pause-leader",
		Doc: "SIGSTOP the leader's process for 3 s (longer than the election timeout), SIGCONT it, 1.5 s between pauses",
		// A paused server reads a request late and so derives a later
		// replicated deadline than the client's context allows for.
		Bounds:   Bounds{NoDeadlines: true},
		MinSlice: 8 * time.Second,
		Procs:    pauseLeader,
	}, Kind{Name: "mixed-flags",
		Doc:        "servers started with different apply-affecting flags (n1 --max-duration 2500ms, n2 --min-duration 1500ms --tick 100ms, n3 the defaults) (main keys ask for 1.5-2.5 s, waiters for 1-4 s), the leader paused as in pause-leader so that each server leads in turn; replicas compared at common applied indices while the load runs",
		Bounds:     Bounds{NoDeadlines: true},
		MinSlice:   8 * time.Second,
		ServerArgs: mixedFlags,
		Workload:   mixedLeases,
		Procs:      pauseLeader,
	})
}

// mixedFlags are the flags of server i in the mixed-flags kind: each
// disagrees with the others on what an apply accepts (see mixedLeases),
// which must not change any apply result.
func mixedFlags(i int) []string {
	switch i {
	case 0:
		return []string{"--max-duration", "2500ms"}
	case 1:
		return []string{"--min-duration", "1500ms", "--tick", "100ms"}
	}
	return nil
}

// mixedLeases: the main keys ask for 1.5-2.5 s, inside every server's
// flags, so that whichever server's flags become the cluster's initial
// settings, the linearizability model (which knows no limits) applies;
// the waiters ask for 1-4 s, across the flags, which the tenure and
// replica checks judge whatever the limits (a renewal past max_duration is
// clamped and says so). Leases up to 4 s outlive the election after a
// pause, so a holder still counts on a lease when another server leads.
func mixedLeases(w *Workload) {
	w.MinLease, w.MaxLease = 1500*time.Millisecond, 2500*time.Millisecond
	w.WaitMinLease, w.WaitMaxLease = time.Second, 4*time.Second
}

// pauseLeader pauses the leader's process for 3 s, then resumes it.
func pauseLeader(ctx context.Context, e *ProcEnv) error {
	i, err := e.leader(ctx, 15*time.Second)
	if err != nil {
		return err
	}
	if err := e.Servers[i].signal(syscall.SIGSTOP); err != nil {
		return err
	}
	hold(ctx, 3*time.Second)
	// The leader the others elected meanwhile (if any), asked before
	// the paused one can answer again.
	next, nerr := e.leader(ctx, 100*time.Millisecond)
	// Resumed even when ctx is done: a stopped server would stall
	// the settling that follows.
	if err := e.Servers[i].signal(syscall.SIGCONT); err != nil {
		return err
	}
	e.mu.Lock()
	e.pauses++
	if nerr == nil && next != i {
		e.moved++
	}
	e.mu.Unlock()
	hold(ctx, 1500*time.Millisecond)
	return nil
}

var serverBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// ServerBinary builds cmd/leasehold once (into a temporary directory that
// RemoveServerBinary deletes) and returns its path.
func ServerBinary() (string, error) {
	b := &serverBin
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "leasehold-faults-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "leasehold")
		cmd := exec.Command("go", "build", "-o", b.path, "github.com/leasehold/leasehold/cmd/leasehold")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build cmd/leasehold: %v\n%s", err, out)
		}
	})
	return b.path, b.err
}

// RemoveServerBinary deletes what ServerBinary built (TestMain calls it).
func RemoveServerBinary() {
	if serverBin.dir != "" {
		os.RemoveAll(serverBin.dir)
	}
}

// Proc is one `leasehold server` child process.
type Proc struct {
	ID, ClientAddr, RaftAddr, HTTPAddr, DataDir, LogPath string

	cmd    *exec.Cmd
	log    *os.File
	done   chan struct{} // closed when the process has exited
	mu     sync.Mutex
	paused bool
	status *client.Client // talks to this server only
}

func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return fmt.Errorf("server %s exited (log %s)", p.ID, p.LogPath)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.ID, err)
	}
	p.paused = sig == syscall.SIGSTOP
	return nil
}

// stop ends the process: SIGCONT if paused, SIGTERM (it hands leadership
// over and closes its stores), SIGKILL after 10 s.
func (p *Proc) stop() {
	p.mu.Lock()
	if p.paused {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.paused = false
	}
	p.mu.Unlock()
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
	}
	p.status.Close()
	p.log.Close()
}

// ProcEnv is a 3-server cluster of separate processes on loopback.
type ProcEnv struct {
	Servers []*Proc
	// Waiters is the waiters' dialer (see Env.Waiters).
	Waiters *ClientNet

	mu            sync.Mutex
	pauses, moved int // leader pauses, and those after which another server led
}

// freeAddrs reserves n loopback ports by listening on them, then releases
// them for the children (a port could be taken in between; startup then
// fails loudly rather than silently).
func freeAddrs(n int) ([]string, error) {
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// StartProcs starts three servers with data under dir and waits for a
// leader; args, if not nil, gives server i extra flags. On error every
// started process is stopped.
func StartProcs(ctx context.Context, dir string, args func(i int) []string) (*ProcEnv, error) {
	bin, err := ServerBinary()
	if err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(9)
	if err != nil {
		return nil, err
	}
	e := &ProcEnv{Waiters: NewClientNet()}
	var boot []string
	for i := 0; i < 3; i++ {
		p := &Proc{ID: fmt.Sprint("n", i+1), ClientAddr: addrs[3*i], RaftAddr: addrs[3*i+1], HTTPAddr: addrs[3*i+2],
			DataDir: filepath.Join(dir, fmt.Sprint("n", i+1)), LogPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
		boot = append(boot, p.ID+"="+p.RaftAddr)
		e.Servers = append(e.Servers, p)
	}
	for i, p := range e.Servers {
		var extra []string
		if args != nil {
			extra = args(i)
		}
		if err := p.start(bin, strings.Join(boot, ","), extra); err != nil {
			e.Close()
			return nil, err
		}
	}
	if _, err := e.leader(ctx, 30*time.Second); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (p *Proc) start(bin, boot string, extra []string) error {
	var err error
	if p.log, err = os.Create(p.LogPath); err != nil {
		return err
	}
	// The default election timeout (1 s) stays: the server exposes no flag
	// for it; the tick is shortened so replicated time moves in small steps.
	p.cmd = exec.Command(bin, "server", "--id", p.ID, "--data-dir", p.DataDir, "--client-addr", p.ClientAddr,
		"--raft-addr", p.RaftAddr, "--http-addr", p.HTTPAddr, "--bootstrap", boot, "--tick", "50ms", "--log-level", "warn")
	p.cmd.Args = append(p.cmd.Args, extra...) // later flags win
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// The kernel kills the child if the test process dies (a panic, kill -9).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.status, err = client.New(client.Config{Endpoints: []string{p.ClientAddr}, ConnectTimeout: 500 * time.Millisecond,
		MaxAttempts: 1}); err != nil {
		p.log.Close()
		return err
	}
	if err := p.cmd.Start(); err != nil {
		p.status.Close()
		p.log.Close()
		return err
	}
	p.done = make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// Close stops every process.
func (e *ProcEnv) Close() {
	var wg sync.WaitGroup
	for _, p := range e.Servers {
		if p.done != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop()
			}()
		}
	}
	wg.Wait()
}

// leader waits up to d for a server that is not paused to say it leads.
func (e *ProcEnv) leader(ctx context.Context, d time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for i, p := range e.Servers {
			p.mu.Lock()
			paused := p.paused
			p.mu.Unlock()
			if paused {
				continue
			}
			sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
			st, err := p.status.Status(sctx)
			scancel()
			if err == nil && st.State == "leader" {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no leader among the server processes (logs in %s): %w", filepath.Dir(e.Servers[0].LogPath), ctx.Err())
		case <-tick.C:
		}
	}
}

// NewClient returns a client of every server, starting at server i%3.
func (e *ProcEnv) NewClient(i int) (*client.Client, error) { return e.newClient(i, nil) }

func (e *ProcEnv) newClient(i int, dialer *ClientNet) (*client.Client, error) {
	var eps []string
	n := len(e.Servers)
	for j := 0; j < n; j++ {
		eps = append(eps, e.Servers[(i+j)%n].ClientAddr)
	}
	cfg := client.Config{Endpoints: eps, ConnectTimeout: 500 * time.Millisecond, BackoffMax: 300 * time.Millisecond}
	if dialer != nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(dialer.Dial)}
	}
	return client.New(cfg)
}

func (e *ProcEnv) clients() Clients {
	cl := Clients{New: e.NewClient, Break: e.Waiters.Reset,
		Waiter: func(i int) (*client.Client, error) { return e.newClient(i, e.Waiters) }}
	for _, p := range e.Servers {
		cl.Servers = append(cl.Servers, replicaReader{id: p.ID, c: p.status})
	}
	return cl
}

// settle resumes every server and waits until every replica has applied
// what the leader had committed.
func (e *ProcEnv) settle(ctx context.Context) error {
	for _, p := range e.Servers {
		p.mu.Lock()
		if p.paused {
			p.cmd.Process.Signal(syscall.SIGCONT)
			p.paused = false
		}
		p.mu.Unlock()
	}
	l, err := e.leader(ctx, 20*time.Second)
	if err != nil {
		return fmt.Errorf("no leader after resuming: %w", err)
	}
	st, err := e.Servers[l].status.Status(ctx)
	if err != nil {
		return err
	}
	target := st.CommitIndex
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range e.Servers {
		for {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := p.status.Status(sctx)
			cancel()
			if err == nil && s.AppliedIndex >= target {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("server %s did not catch up to index %d (%v)", p.ID, target, err)
			}
			hold(ctx, 20*time.Millisecond)
		}
	}
	return nil
}

// Replicas reads every server's final state through the API with stale
// reads (each server answers from its own applied state): the leases of
// the suite's namespace and the pins. Ticks keep advancing the log, so it
// retries a bounded number of times to catch every replica at the same
// applied index, where the checker compares them. Pins cannot change once
// the load has stopped, so reading them in a second call is consistent.
func (e *ProcEnv) Replicas(ctx context.Context) (reps []linearize.Replica, sameIndex bool, err error) {
	for try := 0; try < 50; try++ {
		reps = reps[:0]
		same := true
		for _, p := range e.Servers {
			r, err := p.replica(ctx)
			if err != nil {
				return nil, false, err
			}
			reps = append(reps, r)
			same = same && r.Index == reps[0].Index
		}
		if same {
			return reps, true, nil
		}
	}
	return reps, false, nil
}

func (p *Proc) replica(ctx context.Context) (linearize.Replica, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ls, meta, err := p.status.ListAll(ctx, client.ListOptions{Namespace: Key(0).Namespace, Stale: true})
	if err != nil {
		return linearize.Replica{}, fmt.Errorf("list %s: %w", p.ID, err)
	}
	pins, _, err := p.status.Pinned(ctx, client.Stale())
	if err != nil {
		return linearize.Replica{}, fmt.Errorf("pinned %s: %w", p.ID, err)
	}
	r := linearize.Replica{ID: p.ID, Index: meta.AppliedIndex, Now: meta.Now, Pins: map[lease.Key][]string{}}
	for _, l := range ls {
		r.Leases = append(r.Leases, l.Info)
	}
	for _, pk := range pins {
		r.Pins[pk.Key] = pk.Entities
	}
	return r, nil
}

// runProcs is Run for a process kind.
func runProcs(ctx context.Context, dir string, kind Kind, w Workload) (*Outcome, error) {
	e, err := StartProcs(ctx, dir, kind.ServerArgs)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	h := newHistory()
	ferr, loadErr := drive(ctx, h, w, e.clients(), func(ctx context.Context) error { return kind.Procs(ctx, e) })
	if err := e.settle(ctx); err != nil {
		return nil, err
	}
	if open := h.rec.Open(); open != 0 {
		return nil, fmt.Errorf("%d calls never returned", open)
	}
	reps, same, err := e.Replicas(ctx)
	if err != nil {
		return nil, err
	}
	out := Check(kind.Name, h, reps, kind.Bounds)
	e.mu.Lock()
	out.addNote(fmt.Sprintf("%d leader pauses, %d with a new leader elected during the pause; final states read by stale List/Pinned on each server (all at one applied index: %v)", e.pauses, e.moved, same))
	e.mu.Unlock()
	if ferr != nil {
		return out, fmt.Errorf("fault %s: %w", kind.Name, ferr)
	}
	return out, loadErr
}
