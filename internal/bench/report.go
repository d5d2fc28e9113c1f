package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Report is report.json.
type Report struct {
	Date     time.Time `json:"date"`
	Scenario string    `json:"scenario"`
	Config   runConfig `json:"config"`
	Machine  Machine   `json:"machine"`
	Results  []Result  `json:"results"`
	// Ratios compares targets on the same run: "leasehold/etcd" etc., for
	// ops_per_sec and p99_ms, when both targets are present.
	Ratios []Ratio  `json:"ratios,omitempty"`
	Notes  []string `json:"notes"`
	Out    string   `json:"-"`
	Charts []string `json:"charts"`
}

// Ratio is one target's figures divided by another's.
type Ratio struct {
	Name      string  `json:"name"` // "leasehold/etcd"
	OpsPerSec float64 `json:"ops_per_sec"`
	P99Ms     float64 `json:"p99_ms"`
}

// Result is one target's measurements, all taken from the clients' own
// history except leader changes, entries and RSS, which come from the
// target.
type Result struct {
	Target string `json:"target"`
	// Ops is every call that got an answer (any result); OpsPerSec is Ops
	// over the load's wall time (from the start of the run to the last
	// answer, including the ramp and the drain of calls in flight).
	Ops       uint64  `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// GoodOpsPerSec counts only calls answered with a lease answer (ok,
	// denied, not_held): a target that times out most calls has a high
	// ops_per_sec and a low goodput.
	GoodOpsPerSec float64 `json:"good_ops_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	// Entries is the Raft applied-index growth during the load; OpsPerEntry
	// = Ops / Entries (0 when the target does not report its index).
	Entries uint64 `json:"entries"`
	// Null when the target's renewals are not log entries (etcd): the
	// ratio would then mix log and non-log ops.
	OpsPerEntry *float64 `json:"ops_per_entry"`
	// BulkCalls is the number of bulk calls the agents' ops travelled in
	// (0: one call per op); OpsPerBulkCall = Ops / BulkCalls.
	BulkCalls      uint64  `json:"bulk_calls"`
	OpsPerBulkCall float64 `json:"ops_per_bulk_call,omitempty"`
	// Rejected: overloaded + deadline_exceeded answers (pushed back, not
	// applied). Errors: unavailable, unknown, not_leader, canceled and any
	// other failure. Denied and not_held are normal lease answers.
	Rejected uint64 `json:"rejected"`
	Errors   uint64 `json:"errors"`
	Denied   uint64 `json:"denied"`
	NotHeld  uint64 `json:"not_held"`
	Granted  uint64 `json:"granted"`
	Extended uint64 `json:"extended"`
	// Correctness from the history (see Correctness).
	EarlyExpiries     int      `json:"early_expiries"`
	DualHolders       int      `json:"dual_holders"`
	LateLosses        int      `json:"late_losses"`
	FencingViolations int      `json:"fencing_violations"`
	Tenures           int      `json:"tenures"`
	Violations        []string `json:"violations,omitempty"` // the first few, described
	// HistoryTruncated is always false: the checker (check.go) sees every
	// call as it completes and stores no history. CheckedCalls is how many
	// it checked (= ops).
	HistoryTruncated bool   `json:"history_truncated"`
	CheckedCalls     uint64 `json:"checked_calls"`
	// Renewals answered ok before the holder's previous grant ran out (on
	// time) and after it (late: the agent had already lost its lease by its
	// own clock, even though the server extended it).
	RenewalsOnTime uint64 `json:"renewals_on_time"`
	RenewalsLate   uint64 `json:"renewals_late"`
	// The generator (sched.go): how late it started calls relative to their
	// schedule, the most calls in flight at once (the bound is the config's
	// max_in_flight), and how long due agents waited for the bound.
	GenLagP50Ms     float64 `json:"gen_lag_p50_ms"`
	GenLagP99Ms     float64 `json:"gen_lag_p99_ms"`
	GenLagMaxMs     float64 `json:"gen_lag_max_ms"`
	MaxInFlightSeen int     `json:"max_in_flight_seen"`
	GenAtBoundS     float64 `json:"gen_at_bound_s"`
	// Who used the machine during the load: the harness process's CPU
	// time and peak RSS (getrusage; the generator and clients, plus the
	// servers when they run in-process), and the server process's CPU time
	// (/proc; null when the servers run in the harness process).
	GenCPUS     float64  `json:"gen_cpu_s"`
	GenMaxRSSMB float64  `json:"gen_max_rss_mb"`
	ServerCPUS  *float64 `json:"server_cpu_s"`
	// AppliedAfterDeadline is counted from the clients' history
	// (Correctness.AppliedAfterDeadline) for targets that promise "not
	// applied" when a deadline passes; null for the others (etcd), where
	// it cannot be observed. PhantomTenures likewise counted. ServerAppliedAfterDeadline is the target's
	// own audit, when it has one (server_applied_after_deadline_measured).
	AppliedAfterDeadline               *uint64 `json:"applied_after_deadline"`
	AppliedAfterDeadlineMeasured       bool    `json:"applied_after_deadline_measured"`
	PhantomTenures                     int     `json:"phantom_tenures"`
	ServerAppliedAfterDeadline         uint64  `json:"server_applied_after_deadline"`
	ServerAppliedAfterDeadlineMeasured bool    `json:"server_applied_after_deadline_measured"`
	LeaderChanges                      int     `json:"leader_changes"`
	// MaxRSSMB: peak resident memory sampled every 250 ms. RSSScope says
	// whose: "process" (servers and load generator share this process) or
	// "servers".
	MaxRSSMB    float64           `json:"max_rss_mb"`
	RSSScope    string            `json:"rss_scope"`
	DurationSec float64           `json:"duration_s"`
	ByOp        map[string]OpStat `json:"by_op"`
	ByCode      map[string]uint64 `json:"by_code"`
	Series      []Point           `json:"series"`
	Notes       []string          `json:"notes,omitempty"`
}

// OpStat is one op type's figures.
type OpStat struct {
	Count uint64 `json:"count"`
	// OKPerSec is this op's goodput: calls answered ok per second (the
	// ratio between targets is taken per op, since op shares differ).
	OKPerSec float64           `json:"ok_per_sec"`
	P50Ms    float64           `json:"p50_ms"`
	P99Ms    float64           `json:"p99_ms"`
	MaxMs    float64           `json:"max_ms"`
	MeanMs   float64           `json:"mean_ms"`
	ByCode   map[string]uint64 `json:"by_code"`
}

// Point is one second of the run (by the calls' answer time).
type Point struct {
	T          int     `json:"t"`
	Ops        uint64  `json:"ops"`
	P99Ms      float64 `json:"p99_ms"`
	Rejects    uint64  `json:"rejects"`
	Errors     uint64  `json:"errors"`
	QueueDepth *int    `json:"queue_depth,omitempty"`
}

func measure(cfg runConfig, name string, obs observable, rec *recorder, before, after Stats, mon *monitor, elapsed time.Duration) *Result {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := &Result{Target: name, ByOp: map[string]OpStat{}, ByCode: map[string]uint64{}, DurationSec: elapsed.Seconds()}
	var all hist
	for op := range numOpKinds {
		h := &rec.byOp[op]
		all.merge(h)
		st := OpStat{Count: h.n, P50Ms: ms(h.quantile(.5)), P99Ms: ms(h.quantile(.99)), MaxMs: ms(h.max), ByCode: map[string]uint64{}}
		if h.n > 0 {
			st.MeanMs = ms(h.sum / time.Duration(h.n))
		}
		for c, n := range rec.codes[op] {
			st.ByCode[c.String()] += n
			r.ByCode[c.String()] += n
			switch {
			case isReject(c):
				r.Rejected += n
			case isError(c):
				r.Errors += n
			case c == lease.CodeDenied:
				r.Denied += n
			case c == lease.CodeNotHeld:
				r.NotHeld += n
			case c == lease.CodeOK && op == opClaim:
				r.Granted += n
			case c == lease.CodeOK && op == opExtend:
				r.Extended += n
			}
		}
		st.OKPerSec = float64(rec.codes[op][lease.CodeOK]) / elapsed.Seconds()
		r.ByOp[op.String()] = st
	}
	r.Ops = all.n
	r.OpsPerSec = float64(all.n) / elapsed.Seconds()
	r.GoodOpsPerSec = float64(r.ByCode[lease.CodeOK.String()]+r.Denied+r.NotHeld) / elapsed.Seconds()
	r.P50Ms, r.P99Ms, r.MaxMs = ms(all.quantile(.5)), ms(all.quantile(.99)), ms(all.max)
	if before.HasIndex && after.HasIndex && after.AppliedIndex > before.AppliedIndex {
		r.Entries = after.AppliedIndex - before.AppliedIndex
		if obs.renewalsInLog() {
			ope := float64(r.Ops) / float64(r.Entries)
			r.OpsPerEntry = &ope
		} else {
			r.Notes = append(r.Notes, "ops_per_entry n/a: this target's renewals never touch the log")
		}
	} else {
		r.Notes = append(r.Notes, "the target does not report its Raft index: ops_per_entry not measured")
	}
	if after.HasAppliedAfterDeadline {
		r.ServerAppliedAfterDeadline = after.AppliedAfterDeadline - before.AppliedAfterDeadline
		r.ServerAppliedAfterDeadlineMeasured = true
	}
	r.LeaderChanges = after.LeaderChanges - before.LeaderChanges
	mon.mu.Lock()
	r.MaxRSSMB = float64(mon.maxRSS) / (1 << 20)
	r.RSSScope = "servers"
	if !mon.rssInProc {
		r.Notes = append(r.Notes, "max_rss_mb is the peak RSS (VmHWM) of the child process that runs the 3 servers; clients and load generator not included")
	}
	if mon.rssInProc {
		r.RSSScope = "process"
		r.Notes = append(r.Notes, "servers run in the harness process: max_rss_mb is the whole process (3 servers + clients + load generator)")
	}
	if mon.statsErrors > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d stats samples failed", mon.statsErrors))
	}
	mon.mu.Unlock()
	for i, s := range rec.seconds {
		p := Point{T: i, Ops: s.ops, P99Ms: ms(s.lat.quantile(.99)), Rejects: s.rejects, Errors: s.errors}
		if s.hasQueueDepth {
			p.QueueDepth = &s.queueDepth
		}
		r.Series = append(r.Series, p)
	}
	c := rec.check.finish()
	r.EarlyExpiries, r.DualHolders, r.LateLosses = c.EarlyExpiries, c.DualHolders, c.LateLosses
	r.FencingViolations, r.Tenures, r.Violations = c.FencingViolations, c.Tenures, c.Examples
	if obs.deadlineAware() {
		aad := uint64(c.AppliedAfterDeadline)
		r.AppliedAfterDeadline, r.AppliedAfterDeadlineMeasured = &aad, true
	} else {
		r.Notes = append(r.Notes, "applied_after_deadline n/a: this target makes no \"not applied\" promise when a deadline passes")
	}
	r.PhantomTenures = c.PhantomTenures
	r.CheckedCalls, r.RenewalsOnTime, r.RenewalsLate = c.Checked, c.RenewalsOnTime, c.RenewalsLate
	if c.Unordered > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d calls reached the checker out of order for their holder: the correctness counters are suspect", c.Unordered))
	}
	return r
}

func newReport(cfg runConfig, out string) *Report {
	return &Report{Date: time.Now().UTC(), Scenario: cfg.Scenario, Config: cfg, Machine: machineInfo(), Out: out,
		Notes: []string{
			"every target runs in turn on the same machine, each a fresh 3-node cluster on loopback with fsync on; the load generator shares the CPU",
			"latency and counters come from the clients' recorded calls; leader changes, log entries and RSS from the target",
		}}
}

// finish computes the ratios.
func (r *Report) finish() {
	find := func(name string) *Result {
		i := slices.IndexFunc(r.Results, func(x Result) bool { return x.Target == name })
		if i < 0 {
			return nil
		}
		return &r.Results[i]
	}
	for _, pair := range [][2]string{{"leasehold", "naive"}, {"leasehold", "etcd"}, {"naive", "etcd"}} {
		a, b := find(pair[0]), find(pair[1])
		if a == nil || b == nil {
			continue
		}
		ratio := Ratio{Name: pair[0] + "/" + pair[1]}
		if b.OpsPerSec > 0 {
			ratio.OpsPerSec = a.OpsPerSec / b.OpsPerSec
		}
		if b.P99Ms > 0 {
			ratio.P99Ms = a.P99Ms / b.P99Ms
		}
		r.Ratios = append(r.Ratios, ratio)
	}
	if r.Config.TimeScale != 1 {
		r.Notes = append(r.Notes, fmt.Sprintf("time compressed %gx: %gs leases renewed every %gs stand for %gs leases renewed every %gs",
			r.Config.TimeScale, r.Config.LeaseDurationS, r.Config.RenewEveryS, r.Config.UnscaledLeaseS, r.Config.UnscaledRenewS))
	}
}

func (r *Report) write(dir string) error {
	charts, err := writeCharts(dir, r.Results)
	if err != nil {
		return err
	}
	r.Charts = charts
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644)
}

// Markdown renders report.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "# leasehold bench: %s\n\n", r.Scenario)
	fmt.Fprintf(&b, "%s. %d leases x %d claimants, %gs leases renewed every %gs", r.Date.Format(time.RFC3339), c.Leases, c.Claimants, c.LeaseDurationS, c.RenewEveryS)
	if c.TimeScale != 1 {
		fmt.Fprintf(&b, " (time compressed %gx from %gs / %gs)", c.TimeScale, c.UnscaledLeaseS, c.UnscaledRenewS)
	}
	if c.Rate > 0 {
		fmt.Fprintf(&b, " (saturation run: renewals offer %g ops/s)", c.Rate)
	}
	fmt.Fprintf(&b, ", %gs of load per target, %d sessions, call timeout %gs", c.DurationS, c.Sessions, c.OpTimeoutS)
	switch r.Scenario {
	case "herd":
		fmt.Fprintf(&b, "; every agent restarts at %.0f%% of the run", c.EventAt*100)
	case "burst":
		fmt.Fprintf(&b, "; %d extra claimants per lease claim at once at %.0f%% of the run", c.BurstClaimants, c.EventAt*100)
	}
	fmt.Fprintf(&b, ".\nMachine: %s, %d cores, %s, %s.\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.GoVersion, r.Machine.OS)
	b.WriteString("| target | ops/s | good ops/s | p50 ms | p99 ms | max ms | ops/entry | rejected | errors | denied | early expiries | dual holders | applied after deadline | leader changes | max RSS MB |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Results {
		ope, aad := "n/a", "n/a"
		if x.OpsPerEntry != nil {
			ope = fmt.Sprintf("%.2f", *x.OpsPerEntry)
		}
		if x.AppliedAfterDeadline != nil {
			aad = fmt.Sprint(*x.AppliedAfterDeadline)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2f | %.2f | %.1f | %s | %d | %d | %d | %d | %d | %s | %d | %.0f (%s) |\n",
			x.Target, x.OpsPerSec, x.GoodOpsPerSec, x.P50Ms, x.P99Ms, x.MaxMs, ope, x.Rejected, x.Errors, x.Denied,
			x.EarlyExpiries, x.DualHolders, aad, x.LeaderChanges, x.MaxRSSMB, x.RSSScope)
	}
	if len(r.Ratios) > 0 {
		b.WriteString("\n| ratio | ops/s | p99 |\n|---|---:|---:|\n")
		for _, q := range r.Ratios {
			fmt.Fprintf(&b, "| %s | %.2fx | %.2fx |\n", q.Name, q.OpsPerSec, q.P99Ms)
		}
	}
	b.WriteString("\nPer op (count, p50 / p99 ms, results):\n\n")
	for _, x := range r.Results {
		for _, op := range opKindNames {
			st := x.ByOp[op]
			if st.Count == 0 {
				continue
			}
			codes := make([]string, 0, len(st.ByCode))
			for c, n := range st.ByCode {
				codes = append(codes, fmt.Sprintf("%s %d", c, n))
			}
			slices.Sort(codes)
			fmt.Fprintf(&b, "- %s %s: %d (%.0f ok/s), %.2f / %.2f ms; %s\n", x.Target, op, st.Count, st.OKPerSec, st.P50Ms, st.P99Ms, strings.Join(codes, ", "))
		}
	}
	for _, x := range r.Results {
		if x.BulkCalls > 0 {
			fmt.Fprintf(&b, "- %s: the agents' ops travelled in %d bulk calls, %.1f ops per call\n", x.Target, x.BulkCalls, x.OpsPerBulkCall)
		}
	}
	for _, ch := range r.Charts {
		fmt.Fprintf(&b, "\n![%s](%s)\n", strings.TrimSuffix(ch, ".png"), ch)
	}
	b.WriteString("\nNotes:\n\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	for _, x := range r.Results {
		for _, n := range x.Notes {
			fmt.Fprintf(&b, "- %s: %s\n", x.Target, n)
		}
	}
	return b.String()
}
