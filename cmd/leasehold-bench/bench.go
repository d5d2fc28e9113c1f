package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/internal/bench"
)

// benchFailure is a benchmark that started and failed: exit 1, message
// already printed.
type benchFailure struct{ err error }

func (e benchFailure) Error() string { return e.err.Error() }
func (e benchFailure) ExitCode() int { return 1 }

func init() {
	var (
		o          bench.Options
		targets    []string
		quiet      bool
		inProcess  bool
		cpuProfile string
		ceil       bench.CeilOptions
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark lease services: the Juju harness, per-op ceilings, an open-loop saturation sweep",
		Long: `Runs each target in turn on this machine, each a fresh 3-node cluster on loopback
with fsync on, drives it with Leases x Claimants agents (claim, renew every
--renew-every, wait on denial, back off on errors) and writes DIR/report.json,
DIR/report.md and PNG charts (throughput, p99, rejects, errors over time).

Targets: leasehold (this service), naive (Leasehold with one op per log entry
and no admission control) and etcd (3 embedded etcd members using the lease
API), as far as this build registers them; an unknown target lists those that
are. With no flags every registered target runs for a share of about one
minute; short runs compress time (see --time-scale) so that holders still
renew several times.

--scenario ceilings measures each operation on its own (--ops) at fixed
concurrency (--concurrency), a fresh cluster per run, --reps runs each, and
writes a "ceilings" array (median and range per target, op, concurrency,
batch). --scenario saturation --rates R1,R2,... offers an op at each rate,
open loop, and reports the knee. Targets there: leasehold, etcd and
etcd-leader (etcd's client pinned to the leader).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile + "-harness.pprof")
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if o.Rate > 0 { // the old closed-loop --rate is now a one-point open-loop sweep
				ceil.Rates = append(ceil.Rates, o.Rate)
				o.Rate = 0
			}
			if len(ceil.Rates) > 0 && o.Scenario != "saturation" {
				if cmd.Flags().Changed("scenario") {
					return fmt.Errorf("--rates/--rate go with --scenario saturation")
				}
				o.Scenario = "saturation"
			}
			if o.Scenario == "saturation" && len(ceil.Rates) == 0 {
				return fmt.Errorf("--scenario saturation needs --rates R1,R2,...")
			}
			if o.Scenario == "ceilings" || o.Scenario == "saturation" {
				return runCeilings(cmd, ceil, targets, o, quiet, inProcess, cpuProfile)
			}
			for _, t := range targets {
				if !slices.Contains(bench.Registered(), t) {
					return fmt.Errorf("bench: unknown target %q: this build has %s (leasehold and naive are added when the in-process cluster is wired in)",
						t, strings.Join(bench.Registered(), ", "))
				}
			}
			o.Targets = targets
			if !inProcess {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				o.ServerProcess = func(target, dir string) *exec.Cmd {
					c := exec.Command(exe, "bench-server", "--target", target, "--dir", dir)
					if cpuProfile != "" {
						c.Env = append(os.Environ(), "LEASEHOLD_BENCH_CPUPROFILE="+cpuProfile+"-"+target+"-servers.pprof")
					}
					return c
				}
			}
			if o.Out == "" {
				o.Out = "bench-out-" + time.Now().Format("20060102-150405")
			}
			if !quiet && isTerminal(os.Stderr) {
				o.Progress = os.Stderr
			}
			if !quiet {
				o.Log = os.Stderr
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, o)
			if err != nil {
				fmt.Fprintln(os.Stderr, "leasehold-bench:", err)
				return benchFailure{err}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%-10s %9s %8s %8s %9s %8s %6s %6s %6s %6s %7s %7s\n",
				"target", "ops/s", "p50 ms", "p99 ms", "ops/entry", "rejected", "errors", "early", "dual", "leader", "aad", "rss MB")
			for _, r := range rep.Results {
				aad, ope := "n/a", "n/a"
				if r.AppliedAfterDeadline != nil {
					aad = fmt.Sprint(*r.AppliedAfterDeadline)
				}
				if r.OpsPerEntry != nil {
					ope = fmt.Sprintf("%.2f", *r.OpsPerEntry)
				}
				fmt.Fprintf(out, "%-10s %9.0f %8.2f %8.2f %9s %8d %6d %6d %6d %6d %7s %7.0f\n",
					r.Target, r.OpsPerSec, r.P50Ms, r.P99Ms, ope, r.Rejected, r.Errors,
					r.EarlyExpiries, r.DualHolders, r.LeaderChanges, aad, r.MaxRSSMB)
			}
			for _, q := range rep.Ratios {
				fmt.Fprintf(out, "%s: %.2fx ops/s, %.2fx p99\n", q.Name, q.OpsPerSec, q.P99Ms)
			}
			dir, _ := filepath.Abs(o.Out)
			fmt.Fprintf(out, "report: %s\n", filepath.Join(dir, "report.md"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Scenario, "scenario", "steady", "steady, herd (every agent restarts at once), burst (extra claimants claim at once), ceilings (each op on its own) or saturation (open-loop sweep of --rates)")
	f.StringSliceVar(&ceil.Ops, "ops", nil, "ceilings: ops, comma separated: claim,claim-contended,extend,extend-stream,revoke,expire,bulk-claim,bulk-extend (default claim,extend,revoke)")
	f.IntSliceVar(&ceil.Concurrency, "concurrency", nil, "ceilings: worker counts, each worker one call in flight (default 1,10,100,1000)")
	f.IntVar(&ceil.Batch, "batch", 0, "ceilings: ops per bulk call (default 256; etcd at most 127)")
	f.IntVar(&ceil.Reps, "reps", 0, "ceilings: runs per (target, op, concurrency), fresh cluster each (default 3)")
	f.DurationVar(&ceil.Warmup, "warmup", 0, "ceilings: warm-up before each window, excluded (default min(2s, duration/4))")
	f.IntVar(&ceil.PerConn, "per-conn", 0, "ceilings: workers per client connection (default 10)")
	f.IntVar(&ceil.ExpireLeases, "expire-leases", 0, "ceilings: leases that run out in the expire op (default 20000)")
	f.DurationVar(&ceil.ExpireTTL, "expire-ttl", 0, "ceilings: their duration (default 10s)")
	f.StringSliceVar(&targets, "target", nil, "targets to run, comma separated: leasehold,naive,etcd (default: every registered target)")
	f.IntVar(&o.Leases, "leases", 2000, "number of leases (keys)")
	f.IntVar(&o.Claimants, "claimants", 3, "claimants (agents) per lease")
	f.DurationVar(&o.LeaseDuration, "lease-duration", 60*time.Second, "lease duration every claim and extend asks for")
	f.DurationVar(&o.RenewEvery, "renew-every", 30*time.Second, "holders renew this often (±10% jitter)")
	f.DurationVar(&o.Duration, "duration", 0, "load duration per target (default: 60s shared by the targets, at least 20s each)")
	f.StringVar(&o.Out, "out", "", "output directory (default: a new ./bench-out-YYYYMMDD-HHMMSS)")
	f.Float64Var(&o.TimeScale, "time-scale", 0, "divide --lease-duration and --renew-every by this (1: real time; 0: the smallest factor giving 4 renewals per run, leases >= 2s)")
	f.IntVar(&o.Sessions, "sessions", 8, "client connections per target, shared by the agents")
	f.IntVar(&o.MaxInFlight, "max-in-flight", bench.DefaultMaxInFlight, "most calls the load generator has in flight at once; due agents beyond it wait (the report's gen_lag_* and gen_at_bound_s say how long)")
	f.DurationVar(&o.OpTimeout, "op-timeout", 0, "per-call timeout (default: renew interval / 2, within [1s, 5s])")
	f.IntVar(&o.BurstClaimants, "burst-claimants", 0, "burst: extra claimants per lease (default: --claimants)")
	f.Float64Var(&o.EventAt, "event-at", 0.5, "herd/burst: when it fires, as a fraction of --duration")
	f.Float64Var(&o.RevokeChance, "revoke-chance", 0.02, "probability a holder releases instead of renewing (negative: never)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed for the agents' jitter")
	f.BoolVar(&o.Bulk, "bulk", false, "multiplex the agents' ops onto bulk calls; every target must take them (the same client shape for all)")
	f.BoolVar(&o.NoBulk, "no-bulk", false, "one call per op (the default; kept for old scripts)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write CPU profiles PREFIX-harness.pprof (clients and load) and PREFIX-TARGET-servers.pprof (each target's server process; in ceilings, PREFIX-TARGET-servers-N.pprof per run)")
	f.Float64SliceVar(&ceil.Rates, "rates", nil, "saturation: offered rates (calls per second, open loop) to sweep, e.g. 500,1000,2000,4000")
	f.DurationVar(&ceil.P99Bound, "p99-bound", 0, "saturation: the knee is the highest rate served with p99 under this (default 100ms)")
	f.Float64Var(&o.Rate, "rate", 0, "same as --scenario saturation --rates R (one offered rate, open loop)")
	f.StringVar(&o.DataDir, "data-dir", "", "where the clusters keep their data, removed after each target (default: the temp dir)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar or progress lines on stderr")
	f.BoolVar(&inProcess, "in-process", false, "run the servers in this process (max RSS is then the whole process's) instead of one child process per target")
	rootCmd.AddCommand(cmd)

	// bench-server is the child side of bench: it runs one target's cluster
	// and talks to the parent over stdin/stdout (see bench/child.go).
	var target, dir string
	srv := &cobra.Command{
		Use:    "bench-server",
		Short:  "Run one benchmark target's cluster for leasehold bench (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bench.ServeChild(cmd.Context(), target, dir, os.Stdin, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "leasehold bench-server:", err)
				return benchFailure{err}
			}
			return nil
		},
	}
	srv.Flags().StringVar(&target, "target", "", "target name")
	srv.Flags().StringVar(&dir, "dir", "", "data directory")
	rootCmd.AddCommand(srv)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runCeilings runs the ceilings mode (see bench.RunCeilings).
func runCeilings(cmd *cobra.Command, c bench.CeilOptions, targets []string, o bench.Options, quiet, inProcess bool, cpuProfile string) error {
	c.Targets, c.Duration, c.Out, c.DataDir, c.OpTimeout = targets, o.Duration, o.Out, o.DataDir, o.OpTimeout
	if c.Out == "" {
		c.Out = "bench-out-" + time.Now().Format("20060102-150405")
	}
	if !quiet {
		c.Log = os.Stderr
	}
	if !inProcess {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		runs := 0 // each run starts a fresh server process, so each gets its own profile
		c.ServerProcess = func(target, dir string) *exec.Cmd {
			cmd := exec.Command(exe, "bench-server", "--target", target, "--dir", dir)
			if cpuProfile != "" {
				runs++
				cmd.Env = append(os.Environ(), fmt.Sprintf("LEASEHOLD_BENCH_CPUPROFILE=%s-%s-servers-%d.pprof", cpuProfile, target, runs))
			}
			return cmd
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.RunCeilings(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leasehold-bench:", err)
		return benchFailure{err}
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "%-16s %-12s %6s %6s %10s %21s %8s %8s %8s %8s %6s\n", "op", "target", "c", "batch", "ops/s", "[min-max]", "p50 ms", "p99 ms", "cpu us", "fsync", "errors")
	for _, r := range rep.Ceilings {
		cpu, fs := "n/a", "n/a"
		if r.ServerCPUUsPerOp != nil {
			cpu = fmt.Sprintf("%.0f", *r.ServerCPUUsPerOp)
		}
		if r.FsyncsPerOp != nil {
			fs = fmt.Sprintf("%.3f", *r.FsyncsPerOp)
		}
		fmt.Fprintf(out, "%-16s %-12s %6d %6d %10.0f %10.0f-%-10.0f %8.2f %8.2f %8s %8s %6d\n",
			r.Op, r.Target, r.Concurrency, r.Batch, r.OpsPerSec, r.OpsPerSecMin, r.OpsPerSecMax, r.P50Ms, r.P99Ms, cpu, fs, r.Errors)
	}
	for _, k := range rep.Knees {
		fmt.Fprintf(out, "knee: %s %s: %.0f calls/s offered (%.0f ops/s achieved, p99 %.2f ms <= %.0f ms)\n", k.Target, k.Op, k.OfferedRate, k.OpsPerSec, k.P99Ms, k.P99BoundMs)
	}
	dir, _ := filepath.Abs(c.Out)
	fmt.Fprintf(out, "report: %s\n", filepath.Join(dir, "report.md"))
	return nil
}
