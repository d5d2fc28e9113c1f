package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"time"
)

// Options configure a benchmark run. Zero values take the defaults noted.
type Options struct {
	Scenario string   // steady (default), herd or burst
	Targets  []string // default: every registered target
	Leases   int      // keys; default 2000
	// Claimants per lease (agents contending for each key); default 3.
	Claimants     int
	LeaseDuration time.Duration // asked for by every claim and extend; default 60s
	RenewEvery    time.Duration // holders renew this often (±10 %); default 30s
	// Duration of the load against each target. 0: 60 s shared between the
	// targets, at least 20 s each.
	Duration time.Duration
	// TimeScale divides LeaseDuration and RenewEvery (time compression), so a
	// short run still sees several renewals per holder. 0: automatic, the
	// smallest integer that fits four renew intervals into Duration (never
	// making a lease shorter than 2 s, etcd's minimum TTL); 1: real time.
	TimeScale float64
	// Sessions is the number of client connections per target, shared by the
	// agents; default 8.
	Sessions int
	// OpTimeout bounds every call; default RenewEvery/2 clamped to [1s, 5s]
	// (after scaling).
	OpTimeout time.Duration
	// BurstClaimants: extra claimants per lease that all claim at once in the
	// burst scenario; default Claimants.
	BurstClaimants int
	// EventAt is when the herd or burst fires, as a fraction of Duration;
	// default 0.5.
	EventAt float64
	// RevokeChance is the probability that a holder, instead of renewing,
	// releases its lease (and claims again a renew interval later); default
	// 0.02. Negative: never.
	RevokeChance float64
	// Out is the directory for report.json, report.md and the charts;
	// default a new ./bench-out-YYYYMMDD-HHMMSS.
	Out string
	// DataDir is where the clusters keep their data (removed after each
	// target); default the system temporary directory.
	DataDir string
	// Progress receives the progress bar (nil: none).
	Progress io.Writer
	// Log receives one line per phase (nil: none).
	Log io.Writer
	// Bulk multiplexes the agents of each session onto bulk calls; every
	// target must then take them (BulkSession), so that every target gets
	// the same client shape. Off by default: one call per op for all.
	Bulk bool
	// NoBulk is the old opt-out, now the default; it overrides Bulk.
	NoBulk bool
	// Seed makes the agents' jitter reproducible; default 1.
	Seed uint64
	// Rate, when > 0, is a saturation run: holders renew every
	// Leases/Rate seconds, so their renewals alone offer Rate ops/s (plus
	// the contenders' claims), leases last max(4 renew intervals, 2 s), and
	// time is not compressed (LeaseDuration, RenewEvery and TimeScale are
	// ignored). Agents keep one call in flight each, so once latency passes
	// the renew interval the load becomes closed-loop: the throughput then
	// measured is the target's max under this many agents.
	Rate float64
	// ServerProcess, when set, runs each target's cluster in a child
	// process made by it (see child.go): the command must run ServeChild
	// for target with dataDir. Max RSS is then the servers' own. Targets
	// that cannot be split (the test targets) stay in this process.
	ServerProcess func(target, dataDir string) *exec.Cmd
	// MaxInFlight bounds the calls the generator has in flight at once
	// (default DefaultMaxInFlight). Due agents beyond it wait, and the
	// result's gen_lag_* and gen_at_bound_s say how long.
	MaxInFlight int
	// MaxRecords is ignored: the correctness checker runs as calls complete
	// (check.go) and keeps no history, so nothing is truncated. Kept so
	// that old callers still build.
	MaxRecords int
}

// runConfig is Options after defaults and scaling.
type runConfig struct {
	Scenario       string        `json:"scenario"`
	Targets        []string      `json:"targets"`
	Leases         int           `json:"leases"`
	Claimants      int           `json:"claimants"`
	LeaseDuration  time.Duration `json:"-"`
	RenewEvery     time.Duration `json:"-"`
	Duration       time.Duration `json:"-"`
	TimeScale      float64       `json:"time_scale"`
	Sessions       int           `json:"sessions"`
	OpTimeout      time.Duration `json:"-"`
	BurstClaimants int           `json:"burst_claimants,omitempty"`
	EventAt        float64       `json:"event_at,omitempty"`
	RevokeChance   float64       `json:"revoke_chance"`
	Seed           uint64        `json:"seed"`
	NoBulk         bool          `json:"no_bulk"`
	Bulk           bool          `json:"bulk"`
	Rate           float64       `json:"rate,omitempty"`
	MaxRecords     int           `json:"max_records"` // ignored (see Options.MaxRecords)
	MaxInFlight    int           `json:"max_in_flight"`
	Ramp           time.Duration `json:"-"`
	// The durations again, in seconds, for the JSON report.
	LeaseDurationS float64 `json:"lease_duration_s"`
	RenewEveryS    float64 `json:"renew_every_s"`
	DurationS      float64 `json:"duration_s"`
	OpTimeoutS     float64 `json:"op_timeout_s"`
	RampS          float64 `json:"ramp_s"`
	UnscaledLeaseS float64 `json:"unscaled_lease_duration_s"`
	UnscaledRenewS float64 `json:"unscaled_renew_every_s"`
}

func (o Options) config() (runConfig, error) {
	c := runConfig{
		Scenario: o.Scenario, Targets: o.Targets, Leases: o.Leases, Claimants: o.Claimants,
		LeaseDuration: o.LeaseDuration, RenewEvery: o.RenewEvery, Duration: o.Duration,
		TimeScale: o.TimeScale, Sessions: o.Sessions, OpTimeout: o.OpTimeout,
		BurstClaimants: o.BurstClaimants, EventAt: o.EventAt, RevokeChance: o.RevokeChance,
		Seed: o.Seed, MaxRecords: o.MaxRecords, MaxInFlight: o.MaxInFlight, NoBulk: o.NoBulk || !o.Bulk, Bulk: o.Bulk && !o.NoBulk, Rate: o.Rate,
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Scenario == "" {
		c.Scenario = "steady"
	}
	switch c.Scenario {
	case "steady", "herd", "burst":
	default:
		return c, fmt.Errorf("bench: unknown scenario %q (want steady, herd or burst; ceilings and saturation are RunCeilings)", c.Scenario)
	}
	if len(c.Targets) == 0 {
		c.Targets = Registered()
	}
	if len(c.Targets) == 0 {
		return c, errors.New("bench: no targets registered")
	}
	def(&c.Leases, 2000)
	def(&c.Claimants, 3)
	def(&c.Sessions, 8)
	def(&c.BurstClaimants, c.Claimants)
	def(&c.MaxInFlight, DefaultMaxInFlight)
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 60 * time.Second
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = 30 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = max(60*time.Second/time.Duration(len(c.Targets)), 20*time.Second)
	}
	if c.Leases < 1 || c.Claimants < 1 || c.Sessions < 1 || c.MaxInFlight < 1 || c.LeaseDuration <= 0 || c.RenewEvery <= 0 || c.Duration <= 0 || c.TimeScale < 0 {
		return c, errors.New("bench: leases, claimants, sessions, max in flight, durations and time scale must be positive")
	}
	if c.Rate < 0 {
		return c, errors.New("bench: rate must not be negative")
	}
	if c.Rate > 0 {
		c.RenewEvery = time.Duration(float64(c.Leases) / c.Rate * float64(time.Second))
		c.LeaseDuration = max(4*c.RenewEvery, 2*time.Second)
		c.TimeScale = 1
		if c.RenewEvery <= 0 {
			return c, errors.New("bench: rate too high for this many leases")
		}
	}
	if c.RenewEvery >= c.LeaseDuration {
		return c, fmt.Errorf("bench: --renew-every %v must be shorter than --lease-duration %v", c.RenewEvery, c.LeaseDuration)
	}
	c.UnscaledLeaseS, c.UnscaledRenewS = c.LeaseDuration.Seconds(), c.RenewEvery.Seconds()
	if c.TimeScale == 0 {
		want := math.Ceil(float64(4*c.RenewEvery) / float64(c.Duration))
		limit := math.Floor(float64(c.LeaseDuration) / float64(2*time.Second))
		c.TimeScale = max(1, min(want, limit))
	}
	c.LeaseDuration = time.Duration(float64(c.LeaseDuration) / c.TimeScale)
	c.RenewEvery = time.Duration(float64(c.RenewEvery) / c.TimeScale)
	if c.OpTimeout == 0 {
		c.OpTimeout = min(max(c.RenewEvery/2, time.Second), 5*time.Second)
	}
	if c.EventAt == 0 {
		c.EventAt = 0.5
	}
	if c.RevokeChance == 0 {
		c.RevokeChance = 0.02
	}
	c.RevokeChance = max(c.RevokeChance, 0)
	if c.Seed == 0 {
		c.Seed = 1
	}
	// Steady-state start: the first claims are spread over one renew
	// interval (at most a fifth of the run) so renewals are evenly phased.
	c.Ramp = min(c.RenewEvery, c.Duration/5)
	c.LeaseDurationS, c.RenewEveryS, c.DurationS = c.LeaseDuration.Seconds(), c.RenewEvery.Seconds(), c.Duration.Seconds()
	c.OpTimeoutS, c.RampS = c.OpTimeout.Seconds(), c.Ramp.Seconds()
	return c, nil
}

// Run benchmarks each target in turn and writes the report, report.md and
// the charts into opts.Out.
func Run(ctx context.Context, opts Options) (*Report, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	factories, err := lookup(cfg.Targets)
	if err != nil {
		return nil, err
	}
	out := opts.Out
	if out == "" {
		out = "bench-out-" + time.Now().Format("20060102-150405")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	rep := newReport(cfg, out)
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	for i, f := range factories {
		t := f()
		if a, ok := t.(attachable); ok && opts.ServerProcess != nil {
			t = &childTarget{inner: a, mk: opts.ServerProcess}
		}
		logf("bench: %s: %s, %d leases x %d claimants, %v leases renewed every %v, %v",
			t.Name(), cfg.Scenario, cfg.Leases, cfg.Claimants, cfg.LeaseDuration, cfg.RenewEvery, cfg.Duration)
		res, err := runTarget(ctx, cfg, t, opts, uint64(i))
		if err != nil {
			err = fmt.Errorf("bench: target %s: %w", t.Name(), err)
			if len(rep.Results) > 0 { // keep what was measured
				rep.Notes = append(rep.Notes, "incomplete: "+err.Error())
				rep.finish()
				err = errors.Join(err, rep.write(out))
			}
			return rep, err
		}
		logf("bench: %s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %d early expiries, %d dual holders",
			res.Target, res.OpsPerSec, res.P50Ms, res.P99Ms, res.EarlyExpiries, res.DualHolders)
		rep.Results = append(rep.Results, *res)
	}
	rep.finish()
	if err := rep.write(out); err != nil {
		return rep, err
	}
	return rep, nil
}

// runTarget starts t, drives it for cfg.Duration and measures it.
func runTarget(ctx context.Context, cfg runConfig, t Target, opts Options, salt uint64) (res *Result, err error) {
	runtime.GC()
	debug.FreeOSMemory() // so the previous target's heap does not count against this one
	dir, err := os.MkdirTemp(opts.DataDir, "leasehold-bench-"+t.Name()+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer func() { err = errors.Join(err, t.Stop()) }()

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = t.Start(startCtx, dir)
	cancel()
	if err != nil {
		return nil, err
	}
	if la, ok := innerTarget(t).(leaseDurationAware); ok {
		la.setLeaseDuration(cfg.LeaseDuration)
	}
	sessions := make([]Session, cfg.Sessions)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				err = errors.Join(err, s.Close())
			}
		}
	}()
	var batchers []*batcher
	for i := range sessions {
		if sessions[i], err = t.NewSession(ctx); err != nil {
			return nil, err
		}
		if cfg.Bulk {
			bs, ok := sessions[i].(BulkSession)
			if !ok {
				return nil, fmt.Errorf("--bulk: target %s takes no bulk calls; every target must have the same client shape (drop --bulk)", t.Name())
			}
			b := &batcher{bs: bs}
			batchers = append(batchers, b)
			sessions[i] = bulkSession{b}
		}
	}
	statsNow := func() (Stats, error) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return t.Stats(sctx)
	}
	rec := newRecorder(time.Now())
	opCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	stop, herd := make(chan struct{}), make(chan struct{})
	h := &harness{cfg: cfg, rec: rec, sessions: sessions, opCtx: opCtx}
	eventAt := time.Duration(float64(cfg.Duration) * cfg.EventAt)
	sched := newScheduler(h, salt, eventAt, cfg.MaxInFlight)
	// Untimed per-holder setup (etcd: each agent's session lease).
	holders := map[Session][]string{}
	for i := range sched.agents {
		id := sched.agents[i].id
		holders[h.session(id)] = append(holders[h.session(id)], h.holderName(id))
	}
	for s, hs := range holders {
		if p, ok := s.(preparer); ok {
			if err := p.prepare(ctx, hs); err != nil {
				return nil, fmt.Errorf("%s: preparing sessions: %w", t.Name(), err)
			}
		}
	}
	holders = nil
	before, err := statsNow()
	if err != nil {
		return nil, err
	}
	gen0 := selfUsage()
	srv0, _ := serverCPU(t)
	start := time.Now()
	rec.start = start

	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		sched.run(stop, herd)
	}()
	mon := startMonitor(ctx, t, rec, opts.Progress, cfg.Duration)

	// The clock of the run: the herd, the end, or an abort.
	runTimer := time.NewTimer(cfg.Duration)
	var herdTimer <-chan time.Time
	if cfg.Scenario == "herd" {
		ht := time.NewTimer(eventAt)
		defer ht.Stop()
		herdTimer = ht.C
	}
	aborted := false
wait:
	for {
		select {
		case <-herdTimer:
			close(herd)
			herdTimer = nil
		case <-runTimer.C:
			break wait
		case <-ctx.Done():
			runTimer.Stop()
			aborted = true
			abort() // cancel the calls in flight
			break wait
		}
	}
	close(stop)
	<-schedDone
	elapsed := time.Since(start)
	gen1 := selfUsage()
	srv1, srvOK := serverCPU(t)
	mon.stop()
	if aborted {
		return nil, ctx.Err()
	}
	after, err := statsNow()
	if err != nil {
		return nil, err
	}
	res = measure(cfg, t.Name(), observability(t), rec, before, after, mon, elapsed)
	res.setGenerator(sched, gen0, gen1, srv1-srv0, srvOK)
	for _, b := range batchers {
		b.mu.Lock()
		res.BulkCalls += b.calls
		b.mu.Unlock()
	}
	if res.BulkCalls > 0 {
		res.OpsPerBulkCall = float64(res.Ops) / float64(res.BulkCalls)
	}
	return res, nil
}
