// Package bench is the benchmark (the leasehold-bench binary, also run as
// `leasehold bench`): the Juju lease harness (steady, herd, burst), the
// per-operation ceilings and an open-loop saturation sweep, run against
// several lease services on one machine, measured from the clients' side.
//
// # Modes
//
//   - Juju harness (Run; below): agents claim, renew, wait on denial, back
//     off on errors, with correctness counters from their histories.
//   - Ceilings (RunCeilings; ceil.go): each operation on its own at fixed
//     concurrency (workers with one call in flight each, 10 per
//     connection), untimed setup, warm-up excluded, a fresh cluster per run,
//     targets alternating which runs first, repetitions with median and
//     range. Ops: claim (fresh keys), claim-contended (3 workers per key),
//     extend, extend-stream (etcd's long-lived LeaseKeepAlive), revoke,
//     expire (N leases run out: drain rate and lag from due time),
//     bulk-claim, bulk-extend. Per row: goodput, p50/p99 per call, fsyncs
//     per op from the target's own counter (etcd's WAL fsync histogram;
//     Leasehold's Raft log-store commits), server CPU µs per op
//     (utime+stime of the servers' process), load-generator CPU, max RSS,
//     RSS per held lease. etcd-leader is etcd with the client pinned to
//     the leader.
//   - Saturation (RunCeilings with Rates): each op offered at fixed rates,
//     open loop, latency from each call's due time; the knee is the highest
//     rate served with p99 under a bound, no errors and >= 95 % achieved.
//
// etcd is driven as its users drive it (concurrency.Election) and as its
// own tools/benchmark does: one session lease per worker or agent kept
// alive by clientv3's streaming KeepAlive, a claim is Campaign's one Txn on
// key absence, a release is Resign's compare-and-delete Txn, renewals are
// KeepAliveOnce (and, in the ceilings, long-lived keepalive streams).
//
// # Targets
//
// A Target is a system under test: it starts a fresh 3-node cluster on
// loopback with fsync on, hands out Sessions (client connections), and
// reports a few server-side counters (leader changes, Raft applied index,
// queue depth). Targets register themselves by name with Register:
// `leasehold` (a 3-node Leasehold cluster from package cluster, driven by
// the Go client with bulk calls), `naive` (the same with node.Naive: one op
// per log entry, no admission control; same client, so only the server side
// differs) in leasehold.go, and `etcd` (a 3-member embedded etcd v3.7
// cluster doing the job with its lease API) in etcd.go.
//
// With Options.ServerProcess (the CLI's default; --in-process turns it off)
// each target's cluster runs in a child process, `leasehold bench-server`,
// so that max RSS is the servers' own (see child.go).
//
// # Agent model (the Juju harness, scaled)
//
// Leases x Claimants agents, each with its own holder name, contend for one
// key each (Juju's QA ran 4,000 leases x 3 claimants, 60 s leases renewed
// every 30 s). An agent claims; while it holds, it renews every RenewEvery
// (±10 % jitter), keeping its own safe-until = start of its last successful
// call + the duration it asked for; when denied it waits until the reported
// expiry (plus jitter) or about one renew interval, then claims again; on
// errors it backs off (full jitter, from 50 ms, honouring an overloaded
// answer's retry-after) and retries while its lease is still safe. With
// probability RevokeChance per renewal a holder releases its lease instead.
// Agents share Options.Sessions connections, the same number for every
// target, and every target gets the same client shape: one call per op by
// default; with --bulk the agents of a session are multiplexed onto bulk
// calls as a lease manager would do it (ops that arrive while a bulk call
// is in flight go in the next one, at most MaxBulk per call, no timers),
// and every target must then take bulk calls. Every call is one
// RPC-equivalent with its own deadline (OpTimeout); per-holder setup (etcd's
// session leases) happens before the load, untimed, and a denial's expiry,
// where the target needs a call of its own to find it (etcd's
// LeaseTimeToLive), is looked up after the claim was recorded. Initial
// claims are spread over one renew interval so the run reaches a steady
// state.
//
// Scenarios: steady; herd (at EventAt every agent restarts at once: it
// drops its state and claims again at that instant); burst (at EventAt,
// BurstClaimants extra claimants per lease all claim at once on top of the
// steady renewals, then behave as ordinary agents). The load stops at
// Duration, after the calls in flight have returned.
//
// The generator (sched.go): agents are plain structs in a min-heap keyed by
// the time of their next call, driven by one dispatcher goroutine; each call
// runs in a goroutine of its own, at most MaxInFlight (--max-in-flight,
// default 4096) at once. At the bound the dispatcher blocks until a call
// comes back, and due agents wait: the report's gen_lag_p50_ms,
// gen_lag_p99_ms, gen_lag_max_ms (how late calls started against their
// schedule), max_in_flight_seen and gen_at_bound_s say whether the generator
// kept up. An agent has at most one call in flight.
//
// Time compression: a run shorter than a few renew intervals would see no
// renewals, so by default both LeaseDuration and RenewEvery are divided by
// the smallest integer factor that fits four renew intervals into the run
// (leases never shorter than 2 s, etcd's minimum TTL). TimeScale 1 runs in
// real time. The report states the factor.
//
// # Measurement
//
// Every call is recorded by the agent that made it: op, key, holder, result
// code (the lease taxonomy), start and end on this process's monotonic
// clock, duration asked for, fencing token. No history is stored: each call
// is fed, as it completes, to the online checker (check.go), which applies
// the rules below call by call (checked_calls counts them;
// history_truncated is always false). From the calls:
//
//   - throughput (answered calls per second) and latency p50/p99/max, overall
//     and per op, from log-linear histograms (fixed memory, ~3 % error);
//     per-second series of throughput, p99, rejects and errors (and queue
//     depth when the target reports it), drawn as PNG charts;
//   - rejected = overloaded + deadline_exceeded (pushed back, not applied);
//     errors = every other failure except denied and not_held, which are
//     normal lease answers;
//   - early expiries: a claim or extend answered not_held/denied when the
//     whole call (its End) lay before the holder's safe-until: the server
//     took away a lease it had promised. Calls whose answer arrived after
//     safe-until are "late losses", not early;
//   - dual holders: pairs of different holders whose belief intervals on a
//     key overlap. A holder believes from the end of the call that granted it
//     until its safe-until, its own revoke's start, or the answer that told
//     it otherwise, whichever is first. Fencing tokens group a holder's calls
//     into tenures and must increase in real-time order of grants (fencing
//     violations otherwise).
//   - applied after deadline: a claim answered with a "not applied" code
//     (deadline_exceeded, overloaded, unavailable, not_leader, denied) whose
//     tenure the holder later finds (an extend, or a claim answered
//     "extended", carrying a fencing token it was never given, with no
//     unknown-outcome claim that could explain it). See
//     Correctness.AppliedAfterDeadline for the exact rule. It is null (n/a)
//     for etcd, which makes no "not applied" promise tied to a deadline:
//     its ambiguous answers (a client timeout, "request timed out",
//     "leader changed", a lost connection) are counted as unknown.
//
// From the target: entries = Raft applied-index growth during the load, so
// ops_per_entry = answered calls / entries (null for etcd, whose renewals
// never touch the log; Leasehold's index also counts the idle leader's tick
// entries); leader changes (Raft term growth).
// renewals_on_time / renewals_late: extends answered ok before / after the
// holder's previous grant ran out by its own clock. gen_cpu_s and
// gen_max_rss_mb: getrusage of the harness process (the generator and
// clients) over the load; server_cpu_s: CPU of the servers' child process
// from /proc (null with --in-process).
// Max RSS is the peak RSS (VmHWM) of the servers' child process; with
// --in-process it is the whole process (servers + clients + load generator)
// sampled every 250 ms, and the report says so.
//
// Options.Rate (library only) makes holders renew every Leases/R seconds
// without time compression; the CLI's --rate is now the open-loop
// saturation sweep instead.
//
// # Output
//
// Run writes DIR/report.json (a `results` array, one object per target,
// with the fields CLI.md fixes plus per-op breakdowns and the series),
// DIR/report.md (a table and the ratios leasehold/naive, leasehold/etcd),
// and throughput.png, p99.png, rejects.png, errors.png. The ceilings and
// saturation modes write a `ceilings` array (and `knees`), report.md with
// tables, and per op a goodput chart and a latency chart (p99 against
// goodput, or against the offered rate in a sweep).
package bench
