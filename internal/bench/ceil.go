package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Ceilings mode: each operation on its own, at fixed concurrency, against a
// fresh cluster per run (see doc.go and CLI.md "Ceilings mode").

// Ceiling operations. extend-stream is etcd's long-lived LeaseKeepAlive
// stream; asking for extend runs it too for etcd (its best renewal path
// beside KeepAliveOnce, which is what etcd's own tools/benchmark measures).
var ceilOps = []string{"claim", "claim-contended", "extend", "extend-stream", "revoke", "expire", "bulk-claim", "bulk-extend"}

// CeilOptions configure a ceilings run. Zero values take the defaults noted.
type CeilOptions struct {
	// Targets: leasehold, etcd, etcd-leader (etcd with the client pinned
	// to the leader's endpoint), or any registered target that can be
	// driven (mem, for tests). Default leasehold,etcd.
	Targets []string
	// Ops: see ceilOps. Default claim,extend,revoke.
	Ops []string
	// Concurrency: workers, each with one call in flight; default 1,10,100,1000.
	Concurrency []int
	// Batch: ops per bulk call (bulk-claim, bulk-extend); default 256, and
	// at most 127 for etcd (its 128-op Txn limit, one slot kept).
	Batch int
	// Reps: runs of each (target, op, concurrency); default 3.
	Reps int
	// Duration of the measured window of each run; default 10s.
	Duration time.Duration
	// Warmup before the window, excluded; default min(2s, Duration/4).
	Warmup time.Duration
	// PerConn: workers per client connection; default 10.
	PerConn int
	// ExpireLeases and ExpireTTL: the expire op lets this many leases of
	// this length run out; defaults 20000 and 10s.
	ExpireLeases int
	ExpireTTL    time.Duration
	// OpTimeout bounds every call; default 5s.
	OpTimeout time.Duration
	// Rates, when set, make this a saturation sweep: each op is offered at
	// each rate (calls per second, open loop) to a pool of Concurrency[0]
	// workers (default 500), and the report gives the knee: the highest
	// offered rate served with p99 under P99Bound (default 100ms), no
	// errors and at least 95 % of the offered rate achieved.
	Rates    []float64
	P99Bound time.Duration
	// Out, DataDir, Log, ServerProcess: as in Options.
	Out           string
	DataDir       string
	Log           io.Writer
	ServerProcess func(target, dataDir string) *exec.Cmd
}

func (o *CeilOptions) defaults() error {
	if len(o.Targets) == 0 {
		o.Targets = []string{"leasehold", "etcd"}
	}
	if len(o.Ops) == 0 {
		o.Ops = []string{"claim", "extend", "revoke"}
	}
	for _, op := range o.Ops {
		if !slices.Contains(ceilOps, op) {
			return fmt.Errorf("bench: unknown op %q (want %s)", op, strings.Join(ceilOps, ", "))
		}
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{1, 10, 100, 1000}
		if len(o.Rates) > 0 {
			o.Concurrency = []int{500}
		}
	}
	if len(o.Rates) > 0 && len(o.Concurrency) != 1 {
		return errors.New("bench: a saturation sweep takes one --concurrency: the worker pool size")
	}
	for _, r := range o.Rates {
		if r <= 0 {
			return fmt.Errorf("bench: rate %v must be positive", r)
		}
	}
	if o.P99Bound == 0 {
		o.P99Bound = 100 * time.Millisecond
	}
	for _, c := range o.Concurrency {
		if c < 1 {
			return fmt.Errorf("bench: concurrency %d < 1", c)
		}
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.Batch, 256)
	def(&o.Reps, 3)
	def(&o.PerConn, 10)
	def(&o.ExpireLeases, 20000)
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = min(2*time.Second, o.Duration/4)
	}
	if o.ExpireTTL == 0 {
		o.ExpireTTL = 10 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Batch < 1 || o.Reps < 1 || o.PerConn < 1 || o.ExpireLeases < 1 || o.Duration <= 0 || o.Warmup < 0 {
		return errors.New("bench: batch, reps, per-connection, expire leases and duration must be positive")
	}
	return nil
}

// ceilSpec is one target as the ceilings mode runs it.
type ceilSpec struct {
	name       string // as reported: leasehold, etcd, etcd-leader
	base       string // registry name
	leaderOnly bool
}

func parseCeilTarget(name string) ceilSpec {
	if b, ok := strings.CutSuffix(name, "-leader"); ok {
		return ceilSpec{name: name, base: b, leaderOnly: true}
	}
	return ceilSpec{name: name, base: name}
}

// ceilConnOpts says how to open a connection.
type ceilConnOpts struct {
	endpoints []string // all members, or the leader only
}

// ceilCapable targets can be driven by the ceilings mode.
type ceilCapable interface {
	// ceilConn opens one client connection.
	ceilConn(ctx context.Context, o ceilConnOpts) (ceilConn, error)
	// ceilSupports says whether the target has op; if not, why (a note).
	ceilSupports(op string) (bool, string)
	// ceilMaxBatch is the most ops of one bulk call.
	ceilMaxBatch() int
}

// ceilConn is one client connection of a target.
type ceilConn interface {
	// worker prepares worker id for op (untimed: sessions, held keys).
	worker(ctx context.Context, id int, op string, p ceilParams) (ceilWorker, error)
	// expire lets p.leases leases of p.ttl run out (see expireResult).
	expire(ctx context.Context, p ceilParams) (*expireResult, error)
	Close() error
}

// ceilWorker makes one call per do.
type ceilWorker interface {
	// do makes one call and returns how many of its ops got a lease
	// answer (good, for goodput; a bulk call carries many) and how many of
	// those were denials. err is a failure of the call or of some of its
	// ops (bad ops counted in failed).
	do(ctx context.Context) (good, denied, failed int, err error)
	// held is how many leases this worker holds now.
	held() int
	close()
}

// errExhausted: a revoke worker has released every key its setup gave it.
var errExhausted = errors.New("worker ran out of prepared keys")

// ceilParams parameterise a worker or an expire run.
type ceilParams struct {
	run     string // unique per run, in every key
	batch   int
	keys    int // keys to hold for extend/revoke/bulk-extend
	group   int // claim-contended: the key group of this worker
	leases  int // expire
	ttl     time.Duration
	par     int // expire: setup parallelism
	timeout time.Duration
	onSetup func() // expire: called once the leases are granted
}

// ceilSample is one run's measurements.
type ceilSample struct {
	OpsPerSec     float64
	P50Ms, P99Ms  float64
	Errors        uint64
	Good, Denied  uint64
	Calls         uint64
	Fsyncs        *float64 // per op
	ServerCPUUs   *float64 // per op
	LoadgenCPUUs  float64  // per op
	ServerCores   float64
	LoadgenCores  float64
	MaxRSSMB      float64
	RSSPerLeaseB  *float64
	Held          int
	LagP50Ms      float64 // expire
	LagP99Ms      float64
	DueSpreadS    float64
	Notes         []string
	WindowSeconds float64
	Conns         int
}

// cpuSnap is a CPU and counters snapshot.
type cpuSnap struct {
	at      time.Time
	server  time.Duration
	self    time.Duration
	fsyncs  uint64
	hasFsyn bool
}

type ceilRunner struct {
	o   CeilOptions
	rep *CeilReport
}

func (r *ceilRunner) logf(format string, args ...any) {
	if r.o.Log != nil {
		fmt.Fprintf(r.o.Log, format+"\n", args...)
	}
}

// RunCeilings measures each op on its own for each target, concurrency and
// repetition, writing DIR/report.json (a ceilings array), report.md and
// charts.
func RunCeilings(ctx context.Context, o CeilOptions) (*CeilReport, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	specs := make([]ceilSpec, len(o.Targets))
	for i, n := range o.Targets {
		specs[i] = parseCeilTarget(n)
		if _, err := lookup([]string{specs[i].base}); err != nil {
			return nil, err
		}
	}
	if o.Out == "" {
		o.Out = "bench-out-" + time.Now().Format("20060102-150405")
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	r := &ceilRunner{o: o, rep: newCeilReport(o)}
	samples := map[ceilKey][]ceilSample{}
	var order []ceilKey
	ops := slices.Clone(o.Ops)
	if slices.Contains(ops, "extend") && !slices.Contains(ops, "extend-stream") {
		ops = slices.Insert(ops, slices.Index(ops, "extend")+1, "extend-stream")
	}
	for _, op := range ops {
		type point struct {
			conc int
			rate float64
		}
		var points []point
		for _, c := range o.Concurrency {
			points = append(points, point{c, 0})
		}
		if op == "expire" {
			if len(o.Rates) > 0 {
				r.rep.Notes = appendOnce(r.rep.Notes, "expire is not part of a saturation sweep: skipped")
				continue
			}
			points = []point{{o.ExpireLeases, 0}} // one row: N leases expire at once
		}
		if len(o.Rates) > 0 {
			points = nil
			for _, rt := range o.Rates {
				points = append(points, point{o.Concurrency[0], rt})
			}
		}
		for _, pt := range points {
			c := pt.conc
			for rep := 0; rep < o.Reps; rep++ {
				ts := slices.Clone(specs)
				if rep%2 == 1 { // alternate which target runs first
					slices.Reverse(ts)
				}
				for _, sp := range ts {
					ok, why, err := r.supports(sp, op)
					if err != nil {
						return r.rep, err
					}
					k := ceilKey{sp.name, op, c, r.batchFor(sp, op), pt.rate}
					if !ok {
						if rep == 0 && (op != "extend-stream" || slices.Contains(o.Ops, op)) {
							r.rep.Notes = appendOnce(r.rep.Notes, fmt.Sprintf("%s: %s skipped: %s", sp.name, op, why))
						}
						continue
					}
					if _, seen := samples[k]; !seen {
						order = append(order, k)
					}
					r.logf("bench: %s: %s %s c=%d batch=%d rate=%g rep %d/%d", r.rep.Scenario, sp.name, op, c, k.batch, pt.rate, rep+1, o.Reps)
					s, err := r.runOnce(ctx, sp, op, c, rep, k.rate)
					if err != nil {
						if ctx.Err() != nil {
							return r.rep, err
						}
						r.logf("bench: ceilings: %s %s c=%d: %v", sp.name, op, c, err)
						s = ceilSample{Notes: []string{"run failed: " + err.Error()}}
					}
					r.logf("bench: ceilings: %s %s c=%d: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, errors %d",
						sp.name, op, c, s.OpsPerSec, s.P50Ms, s.P99Ms, s.Errors)
					samples[k] = append(samples[k], s)
				}
			}
		}
	}
	for _, k := range order {
		r.rep.Ceilings = append(r.rep.Ceilings, aggregate(k, samples[k]))
	}
	r.rep.finish(o.P99Bound)
	return r.rep, r.rep.write(o.Out)
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// supports asks a fresh (unstarted) target whether it has op.
func (r *ceilRunner) supports(sp ceilSpec, op string) (bool, string, error) {
	fs, err := lookup([]string{sp.base})
	if err != nil {
		return false, "", err
	}
	cc, ok := fs[0]().(ceilCapable)
	if !ok {
		return false, "", fmt.Errorf("bench: target %s cannot run the ceilings mode", sp.base)
	}
	if sp.leaderOnly && sp.base != "etcd" {
		return false, "", fmt.Errorf("bench: %s: only etcd has a leader-only variant (the Leasehold client routes to the leader itself)", sp.name)
	}
	yes, why := cc.ceilSupports(op)
	return yes, why, nil
}

func (r *ceilRunner) batchFor(sp ceilSpec, op string) int {
	if !strings.HasPrefix(op, "bulk-") {
		return 1
	}
	fs, _ := lookup([]string{sp.base})
	if cc, ok := fs[0]().(ceilCapable); ok {
		return min(r.o.Batch, cc.ceilMaxBatch())
	}
	return r.o.Batch
}

// serverPID is the process whose CPU and RSS are the servers': the child,
// or this process when the target runs in it.
func serverPID(t Target) (pid int, inProc bool) {
	if c, ok := t.(*childTarget); ok && c.cmd != nil && c.cmd.Process != nil {
		return c.cmd.Process.Pid, false
	}
	return os.Getpid(), true
}

func (r *ceilRunner) snap(ctx context.Context, t Target, pid int) cpuSnap {
	s := cpuSnap{at: time.Now(), server: procCPU(pid), self: selfCPU()}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := t.Stats(sctx)
	cancel()
	if err == nil && st.HasFsyncs {
		s.fsyncs, s.hasFsyn = st.Fsyncs, true
	}
	return s
}

// runOnce is one run: a fresh cluster, untimed setup, warm-up, the window.
//
// With rate > 0 the load is open-loop: calls are offered at that rate
// whatever the answers, to the conc workers; a call that finds no idle
// worker is dropped (counted as an error), and latency runs from the
// moment the call was due, so a slow server is not hidden by the load
// generator waiting for it (coordinated omission).
func (r *ceilRunner) runOnce(ctx context.Context, sp ceilSpec, op string, conc, rep int, rate float64) (s ceilSample, err error) {
	fs, _ := lookup([]string{sp.base})
	t := fs[0]()
	inner := t
	if a, ok := t.(attachable); ok && r.o.ServerProcess != nil {
		t = &childTarget{inner: a, mk: r.o.ServerProcess}
	}
	cc := inner.(ceilCapable)
	dir, err := os.MkdirTemp(r.o.DataDir, "leasehold-ceil-"+sp.base+"-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)
	defer func() { err = errors.Join(err, t.Stop()) }()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = t.Start(startCtx, dir)
	cancel()
	if err != nil {
		return s, err
	}
	pid, inProc := serverPID(t)
	if inProc {
		s.Notes = append(s.Notes, "servers ran in the load generator's process: server CPU and RSS include the load generator")
	}
	rssBase := procRSS(pid)
	co := ceilConnOpts{}
	if a, ok := inner.(attachable); ok {
		co.endpoints = a.Endpoints()
	}
	if sp.leaderOnly {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := t.Stats(sctx)
		cancel()
		if err != nil || st.LeaderEndpoint == "" {
			return s, fmt.Errorf("%s: no leader endpoint: %v", sp.name, err)
		}
		co.endpoints = []string{st.LeaderEndpoint}
	}
	nconn := (conc + r.o.PerConn - 1) / r.o.PerConn
	if op == "expire" {
		nconn = 1
	}
	s.Conns = nconn
	conns := make([]ceilConn, 0, nconn)
	defer func() {
		for _, c := range conns {
			err = errors.Join(err, c.Close())
		}
	}()
	for range nconn {
		c, err := cc.ceilConn(ctx, co)
		if err != nil {
			return s, err
		}
		conns = append(conns, c)
	}
	p := ceilParams{run: fmt.Sprintf("r%d", time.Now().UnixNano()%1e9), batch: min(r.o.Batch, cc.ceilMaxBatch()), timeout: r.o.OpTimeout}
	if op == "expire" {
		return r.runExpire(ctx, t, pid, rssBase, conns[0], p, s)
	}
	switch op {
	case "extend", "extend-stream":
		p.keys = 1
	case "bulk-extend":
		p.keys = p.batch
	case "revoke":
		p.keys = revokeKeys(sp.base, conc, r.o.Duration+r.o.Warmup)
	}
	workers := make([]ceilWorker, conc)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.close()
			}
		}
	}()
	// Untimed setup, at most 100 workers preparing at once.
	var setupErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	setupStart := time.Now()
	for i := range workers {
		wp := p
		wp.group = i / 3
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			w, err := conns[i%nconn].worker(ctx, i, op, wp)
			mu.Lock()
			defer mu.Unlock()
			workers[i] = w
			if err != nil && setupErr == nil {
				setupErr = fmt.Errorf("setup of worker %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	if setupErr != nil {
		return s, setupErr
	}
	if d := time.Since(setupStart); d > time.Second {
		s.Notes = append(s.Notes, fmt.Sprintf("setup (untimed) took %.1fs", d.Seconds()))
	}

	// The load: every worker loops until stop; calls answered inside the
	// window [ws, we) are measured.
	var ws, we atomic.Int64
	ws.Store(1<<62 - 1)
	we.Store(1<<62 - 1)
	base := time.Now()
	stop := make(chan struct{})
	type acc struct {
		h                         hist
		good, denied, errs, calls uint64
		exhausted                 bool
	}
	accs := make([]acc, conc)
	var jobs chan time.Time // open loop: due times
	var dropped atomic.Uint64
	if rate > 0 {
		jobs = make(chan time.Time, conc) // at most one queued call per worker
		wg.Go(func() { offer(ctx, jobs, stop, rate, base, &ws, &we, &dropped) })
	}
	for i, w := range workers {
		wg.Go(func() {
			a := &accs[i]
			for {
				t0 := time.Now()
				if jobs != nil {
					due, ok := <-jobs
					if !ok {
						return
					}
					t0 = due
				} else {
					select {
					case <-stop:
						return
					default:
					}
				}
				cctx, cancel := context.WithTimeout(ctx, r.o.OpTimeout)
				good, denied, failed, err := w.do(cctx)
				t1 := time.Now()
				cancel()
				if errors.Is(err, errExhausted) {
					a.exhausted = true
					return
				}
				if ctx.Err() != nil {
					return
				}
				end := int64(t1.Sub(base))
				if end >= ws.Load() && end < we.Load() {
					a.h.add(t1.Sub(t0))
					a.calls++
					a.good += uint64(good)
					a.denied += uint64(denied)
					a.errs += uint64(failed)
					if err != nil && failed == 0 {
						a.errs++
					}
				}
				if err != nil && failed == 0 && jobs == nil {
					// a failed call: do not spin on a dead cluster
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		})
	}
	sleepCtx(ctx, r.o.Warmup)
	a := r.snap(ctx, t, pid)
	ws.Store(int64(a.at.Sub(base)))
	sleepCtx(ctx, r.o.Duration)
	b := r.snap(ctx, t, pid)
	we.Store(int64(b.at.Sub(base)))
	close(stop)
	wg.Wait()
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	var all hist
	exhausted := 0
	for i := range accs {
		x := &accs[i]
		all.merge(&x.h)
		s.Good += x.good
		s.Denied += x.denied
		s.Errors += x.errs
		s.Calls += x.calls
		if x.exhausted {
			exhausted++
		}
	}
	if d := dropped.Load(); d > 0 {
		s.Errors += d
		s.Notes = append(s.Notes, fmt.Sprintf("%d offered calls found no idle worker and were dropped (counted as errors)", d))
	}
	if exhausted > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d workers ran out of prepared keys before the end: the figure understates the ceiling", exhausted))
	}
	for _, w := range workers {
		s.Held += w.held()
	}
	win := b.at.Sub(a.at)
	s.WindowSeconds = win.Seconds()
	s.OpsPerSec = float64(s.Good) / win.Seconds()
	s.P50Ms, s.P99Ms = ms(all.quantile(.5)), ms(all.quantile(.99))
	s.fill(a, b, pid, rssBase)
	return s, nil
}
