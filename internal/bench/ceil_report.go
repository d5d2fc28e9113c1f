package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// CeilReport is report.json of the ceilings mode.
type CeilReport struct {
	Date     time.Time     `json:"date"`
	Scenario string        `json:"scenario"` // "ceilings"
	Config   ceilConfigOut `json:"config"`
	Machine  Machine       `json:"machine"`
	Ceilings []CeilRow     `json:"ceilings"`
	// Saturation sweep only: the knee per (target, op).
	Knees []Knee `json:"knees,omitempty"`
	// Ratios: leasehold/etcd goodput per (op, concurrency), from medians of
	// the same invocation.
	Ratios []CeilRatio `json:"ratios,omitempty"`
	Notes  []string    `json:"notes"`
	Charts []string    `json:"charts"`
}

type ceilConfigOut struct {
	Targets      []string  `json:"targets"`
	Ops          []string  `json:"ops"`
	Concurrency  []int     `json:"concurrency"`
	Rates        []float64 `json:"rates,omitempty"`
	P99BoundMs   float64   `json:"p99_bound_ms,omitempty"`
	Batch        int       `json:"batch"`
	Reps         int       `json:"reps"`
	DurationS    float64   `json:"duration_s"`
	WarmupS      float64   `json:"warmup_s"`
	PerConn      int       `json:"workers_per_connection"`
	ExpireLeases int       `json:"expire_leases"`
	ExpireTTLS   float64   `json:"expire_ttl_s"`
	OpTimeoutS   float64   `json:"op_timeout_s"`
}

// CeilRow is one (target, op, concurrency, batch): medians over the reps,
// with the goodput's range. Pointer fields are null where not observable.
type CeilRow struct {
	Target            string   `json:"target"`
	Op                string   `json:"op"`
	Concurrency       int      `json:"concurrency"`
	Batch             int      `json:"batch"`
	Reps              int      `json:"reps"`
	OpsPerSec         float64  `json:"ops_per_sec"`
	OpsPerSecMin      float64  `json:"ops_per_sec_min"`
	OpsPerSecMax      float64  `json:"ops_per_sec_max"`
	P50Ms             float64  `json:"p50_ms"`
	P99Ms             float64  `json:"p99_ms"`
	ServerCPUUsPerOp  *float64 `json:"server_cpu_us_per_op"`
	FsyncsPerOp       *float64 `json:"fsyncs_per_op"`
	MaxRSSMB          float64  `json:"max_rss_mb"`
	Errors            uint64   `json:"errors"`
	Connections       int      `json:"connections"`
	Denied            uint64   `json:"denied"`
	LoadgenCPUUsPerOp float64  `json:"loadgen_cpu_us_per_op"`
	ServerCores       float64  `json:"server_cores"`
	LoadgenCores      float64  `json:"loadgen_cores"`
	RSSPerLeaseBytes  *float64 `json:"rss_per_held_lease_bytes"`
	HeldLeases        int      `json:"held_leases"`
	// expire only: lag from due time to the expiry being seen.
	LagP50Ms   *float64  `json:"expiry_lag_p50_ms,omitempty"`
	LagP99Ms   *float64  `json:"expiry_lag_p99_ms,omitempty"`
	DueSpreadS *float64  `json:"due_spread_s,omitempty"`
	Samples    []float64 `json:"ops_per_sec_samples"`
	// saturation only: the offered rate in calls per second (open loop).
	OfferedRate float64  `json:"offered_rate,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// Knee is the highest offered rate a target served with p99 under the
// bound, no errors and at least 95 % of the rate achieved; 0 when none was.
type Knee struct {
	Target      string  `json:"target"`
	Op          string  `json:"op"`
	OfferedRate float64 `json:"offered_rate"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P99Ms       float64 `json:"p99_ms"`
	P99BoundMs  float64 `json:"p99_bound_ms"`
}

// CeilRatio is leasehold's median goodput over another target's.
type CeilRatio struct {
	Name        string  `json:"name"` // "leasehold/etcd"
	Op          string  `json:"op"`
	Concurrency int     `json:"concurrency"`
	OpsPerSec   float64 `json:"ops_per_sec"`
}

type ceilKey struct {
	target string
	op     string
	conc   int
	batch  int
	rate   float64 // saturation: offered calls per second
}

func newCeilReport(o CeilOptions) *CeilReport {
	scenario := "ceilings"
	if len(o.Rates) > 0 {
		scenario = "saturation"
	}
	return &CeilReport{
		Date: time.Now().UTC(), Scenario: scenario, Machine: machineInfo(),
		Config: ceilConfigOut{
			Targets: o.Targets, Ops: o.Ops, Concurrency: o.Concurrency, Rates: o.Rates, P99BoundMs: ms(o.P99Bound), Batch: o.Batch, Reps: o.Reps,
			DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), PerConn: o.PerConn,
			ExpireLeases: o.ExpireLeases, ExpireTTLS: o.ExpireTTL.Seconds(), OpTimeoutS: o.OpTimeout.Seconds(),
		},
		Notes: []string{
			"each run is a fresh 3-node cluster on loopback with fsync on, in a process of its own; targets alternate which runs first; the load generator shares the machine",
			"ops_per_sec is goodput: ops answered with a lease answer (granted, extended, revoked, or denied for claim-contended) inside the measured window, per second; a bulk call of B ops counts B",
			"p50/p99 are per call (a bulk call is one call); every call has its own deadline",
			"fsyncs_per_op: etcd's etcd_disk_wal_fsync_duration_seconds count; Leasehold's Raft log-store writes (one fdatasync each), summed over the 3 members",
			"server_cpu_us_per_op: utime+stime of the process running the 3 servers over the window; rss_per_held_lease_bytes: RSS growth since start over the leases held at the end",
		},
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianPtr(ps []*float64) *float64 {
	var xs []float64
	for _, p := range ps {
		if p != nil {
			xs = append(xs, *p)
		}
	}
	if len(xs) == 0 {
		return nil
	}
	m := median(xs)
	return &m
}

func aggregate(k ceilKey, ss []ceilSample) CeilRow {
	row := CeilRow{Target: k.target, Op: k.op, Concurrency: k.conc, Batch: k.batch, Reps: len(ss), OfferedRate: k.rate}
	var ops, p50, p99, lg, sc, lc, rss, l50, l99, spread []float64
	var cpu, fs, per []*float64
	for _, s := range ss {
		ops = append(ops, s.OpsPerSec)
		p50, p99 = append(p50, s.P50Ms), append(p99, s.P99Ms)
		lg, sc, lc = append(lg, s.LoadgenCPUUs), append(sc, s.ServerCores), append(lc, s.LoadgenCores)
		rss = append(rss, s.MaxRSSMB)
		cpu, fs, per = append(cpu, s.ServerCPUUs), append(fs, s.Fsyncs), append(per, s.RSSPerLeaseB)
		l50, l99, spread = append(l50, s.LagP50Ms), append(l99, s.LagP99Ms), append(spread, s.DueSpreadS)
		row.Errors += s.Errors
		row.Denied += s.Denied
		row.HeldLeases = max(row.HeldLeases, s.Held)
		row.Connections = max(row.Connections, s.Conns)
		for _, n := range s.Notes {
			row.Notes = appendOnce(row.Notes, n)
		}
	}
	row.Samples = ops
	row.OpsPerSec, row.OpsPerSecMin, row.OpsPerSecMax = median(ops), slices.Min(ops), slices.Max(ops)
	row.P50Ms, row.P99Ms = median(p50), median(p99)
	row.LoadgenCPUUsPerOp, row.ServerCores, row.LoadgenCores = median(lg), median(sc), median(lc)
	row.MaxRSSMB = slices.Max(rss)
	row.ServerCPUUsPerOp, row.FsyncsPerOp, row.RSSPerLeaseBytes = medianPtr(cpu), medianPtr(fs), medianPtr(per)
	if k.op == "expire" {
		a, b, c := median(l50), median(l99), median(spread)
		row.LagP50Ms, row.LagP99Ms, row.DueSpreadS = &a, &b, &c
	}
	row.Connections = ss[0].Conns
	return row
}

// finish computes leasehold/X ratios of median goodput per (op, concurrency).
func (r *CeilReport) finish(bound time.Duration) {
	if r.Scenario == "saturation" {
		r.knees(bound)
		return
	}
	for _, a := range r.Ceilings {
		if a.Target != "leasehold" {
			continue
		}
		for _, b := range r.Ceilings {
			if b.Target == "leasehold" || b.Concurrency != a.Concurrency || b.OpsPerSec == 0 {
				continue
			}
			if b.Op == a.Op || (a.Op == "extend" && b.Op == "extend-stream") {
				r.Ratios = append(r.Ratios, CeilRatio{Name: a.Target + "/" + b.Target, Op: b.Op, Concurrency: a.Concurrency, OpsPerSec: a.OpsPerSec / b.OpsPerSec})
			}
		}
	}
}

func (r *CeilReport) write(dir string) error {
	charts, err := writeCeilCharts(dir, r.Ceilings, r.Scenario == "saturation")
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

func fmtPtr(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

// Markdown renders report.md.
func (r *CeilReport) Markdown() string {
	var b strings.Builder
	c := r.Config
	if r.Scenario == "saturation" {
		return r.saturationMarkdown()
	}
	fmt.Fprintf(&b, "# leasehold bench: ceilings\n\n%s. Targets %s; %d reps of %gs windows after %gs warm-up; %d workers per connection; bulk calls of up to %d ops; call deadline %gs.\n",
		r.Date.Format(time.RFC3339), strings.Join(c.Targets, ", "), c.Reps, c.DurationS, c.WarmupS, c.PerConn, c.Batch, c.OpTimeoutS)
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s.\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.GoVersion, r.Machine.OS)
	b.WriteString("| op | target | workers | batch | ops/s median [min–max] | p50 ms | p99 ms | server CPU µs/op | fsyncs/op | load-gen CPU µs/op | max RSS MB | RSS B/held lease | errors |\n")
	b.WriteString("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Ceilings {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.0f [%.0f–%.0f] | %.2f | %.2f | %s | %s | %.0f | %.0f | %s | %d |\n",
			x.Op, x.Target, x.Concurrency, x.Batch, x.OpsPerSec, x.OpsPerSecMin, x.OpsPerSecMax, x.P50Ms, x.P99Ms,
			fmtPtr(x.ServerCPUUsPerOp, "%.0f"), fmtPtr(x.FsyncsPerOp, "%.3f"), x.LoadgenCPUUsPerOp, x.MaxRSSMB,
			fmtPtr(x.RSSPerLeaseBytes, "%.0f"), x.Errors)
	}
	var exp []CeilRow
	for _, x := range r.Ceilings {
		if x.Op == "expire" {
			exp = append(exp, x)
		}
	}
	if len(exp) > 0 {
		fmt.Fprintf(&b, "\nExpiry of %d leases of %gs (ops/s above is the drain rate: expiries seen / (last seen − first due)):\n\n", c.ExpireLeases, c.ExpireTTLS)
		b.WriteString("| target | drain/s median [min–max] | lag p50 ms | lag p99 ms | due spread s | missing |\n|---|---|---:|---:|---:|---:|\n")
		for _, x := range exp {
			fmt.Fprintf(&b, "| %s | %.0f [%.0f–%.0f] | %s | %s | %s | %d |\n", x.Target, x.OpsPerSec, x.OpsPerSecMin, x.OpsPerSecMax,
				fmtPtr(x.LagP50Ms, "%.0f"), fmtPtr(x.LagP99Ms, "%.0f"), fmtPtr(x.DueSpreadS, "%.1f"), x.Errors)
		}
	}
	if len(r.Ratios) > 0 {
		b.WriteString("\n| ratio (median goodput) | op | workers | × |\n|---|---|---:|---:|\n")
		for _, q := range r.Ratios {
			fmt.Fprintf(&b, "| %s | %s | %d | %.2f |\n", q.Name, q.Op, q.Concurrency, q.OpsPerSec)
		}
	}
	for _, ch := range r.Charts {
		fmt.Fprintf(&b, "\n![%s](%s)\n", strings.TrimSuffix(ch, ".png"), ch)
	}
	b.WriteString("\nNotes:\n\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	for _, x := range r.Ceilings {
		for _, n := range x.Notes {
			fmt.Fprintf(&b, "- %s %s c=%d: %s\n", x.Target, x.Op, x.Concurrency, n)
		}
	}
	return b.String()
}

// writeCeilCharts draws, per op, goodput against workers and p99 against
// goodput (the latency/throughput curve), one line per target.
func writeCeilCharts(dir string, rows []CeilRow, sweep bool) ([]string, error) {
	var ops []string
	for _, x := range rows {
		if x.Op != "expire" && !slices.Contains(ops, x.Op) {
			ops = append(ops, x.Op)
		}
	}
	var files []string
	for _, op := range ops {
		for _, kind := range []string{"throughput", "latency"} {
			p := plot.New()
			switch {
			case sweep && kind == "throughput":
				p.Title.Text = op + ": achieved vs offered (open loop)"
				p.X.Label.Text = "offered ops/s"
				p.Y.Label.Text = "achieved ops/s"
			case sweep:
				p.Title.Text = op + ": p99 vs offered rate (open loop)"
				p.X.Label.Text = "offered ops/s"
				p.Y.Label.Text = "p99 ms (from due time)"
			case kind == "throughput":
				p.Title.Text = op + ": goodput vs workers"
				p.X.Label.Text = "workers (log10)"
				p.Y.Label.Text = "ops/s (median)"
			default:
				p.Title.Text = op + ": p99 vs goodput"
				p.X.Label.Text = "ops/s (median)"
				p.Y.Label.Text = "p99 ms"
			}
			p.Y.Min = 0
			p.Legend.Top = true
			var targets []string
			for _, x := range rows {
				if x.Op == op && !slices.Contains(targets, x.Target) {
					targets = append(targets, x.Target)
				}
			}
			for i, t := range targets {
				var xys plotter.XYs
				for _, x := range rows {
					if x.Op != op || x.Target != t {
						continue
					}
					offered := x.OfferedRate * float64(x.Batch)
					switch {
					case sweep && kind == "throughput":
						xys = append(xys, plotter.XY{X: offered, Y: x.OpsPerSec})
					case sweep:
						xys = append(xys, plotter.XY{X: offered, Y: x.P99Ms})
					case kind == "throughput":
						xys = append(xys, plotter.XY{X: math.Log10(float64(x.Concurrency)), Y: x.OpsPerSec})
					default:
						xys = append(xys, plotter.XY{X: x.OpsPerSec, Y: x.P99Ms})
					}
				}
				if len(xys) == 0 {
					continue
				}
				l, pts, err := plotter.NewLinePoints(xys)
				if err != nil {
					return nil, err
				}
				l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
				l.Width = vg.Points(1.5)
				p.Add(l, pts)
				p.Legend.Add(t, l)
			}
			f := fmt.Sprintf("%s-%s.png", op, kind)
			if err := p.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(dir, f)); err != nil {
				return nil, fmt.Errorf("chart %s: %w", f, err)
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// knees finds each (target, op)'s knee in a saturation sweep. Each call
// carries batch ops, so the offered op rate is rate x batch.
func (r *CeilReport) knees(bound time.Duration) {
	type to struct{ t, op string }
	var order []to
	best := map[to]Knee{}
	for _, x := range r.Ceilings {
		k := to{x.Target, x.Op}
		if _, ok := best[k]; !ok {
			order = append(order, k)
			best[k] = Knee{Target: x.Target, Op: x.Op, P99BoundMs: ms(bound)}
		}
		offeredOps := x.OfferedRate * float64(x.Batch)
		if x.Errors == 0 && x.P99Ms <= ms(bound) && x.OpsPerSec >= 0.95*offeredOps && x.OfferedRate > best[k].OfferedRate {
			best[k] = Knee{Target: x.Target, Op: x.Op, OfferedRate: x.OfferedRate, OpsPerSec: x.OpsPerSec, P99Ms: x.P99Ms, P99BoundMs: ms(bound)}
		}
	}
	for _, k := range order {
		r.Knees = append(r.Knees, best[k])
	}
}

func (r *CeilReport) saturationMarkdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "# leasehold bench: saturation (open-loop sweep)\n\n%s. Targets %s; offered rates %v calls/s to a pool of %v workers; %d reps of %gs windows after %gs warm-up; call deadline %gs. Latency runs from each call's due time.\n",
		r.Date.Format(time.RFC3339), strings.Join(c.Targets, ", "), c.Rates, c.Concurrency, c.Reps, c.DurationS, c.WarmupS, c.OpTimeoutS)
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s.\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.GoVersion, r.Machine.OS)
	b.WriteString("| op | target | offered ops/s | achieved ops/s median [min–max] | p50 ms | p99 ms | server CPU µs/op | fsyncs/op | errors |\n|---|---|---:|---|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Ceilings {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f [%.0f–%.0f] | %.2f | %.2f | %s | %s | %d |\n", x.Op, x.Target, x.OfferedRate*float64(x.Batch),
			x.OpsPerSec, x.OpsPerSecMin, x.OpsPerSecMax, x.P50Ms, x.P99Ms, fmtPtr(x.ServerCPUUsPerOp, "%.0f"), fmtPtr(x.FsyncsPerOp, "%.3f"), x.Errors)
	}
	b.WriteString("\nKnee: the highest offered rate served with p99 under the bound, no errors and at least 95 % of it achieved (0: none was).\n\n| op | target | knee (offered calls/s) | achieved ops/s | p99 ms | bound ms |\n|---|---|---:|---:|---:|---:|\n")
	for _, k := range r.Knees {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.2f | %.0f |\n", k.Op, k.Target, k.OfferedRate, k.OpsPerSec, k.P99Ms, k.P99BoundMs)
	}
	for _, ch := range r.Charts {
		fmt.Fprintf(&b, "\n![%s](%s)\n", strings.TrimSuffix(ch, ".png"), ch)
	}
	b.WriteString("\nNotes:\n\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	for _, x := range r.Ceilings {
		for _, n := range x.Notes {
			fmt.Fprintf(&b, "- %s %s rate=%.0f: %s\n", x.Target, x.Op, x.OfferedRate, n)
		}
	}
	return b.String()
}
