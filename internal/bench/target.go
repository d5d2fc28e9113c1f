package bench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Target is one system under test. The harness drives every target through
// the same agent model, the same number of sessions and the same keys, so
// their results are comparable.
//
// A Target value is used for one run only: the harness asks the registry for
// a fresh one per run, calls Start once and Stop once.
type Target interface {
	// Name is the target's registry name ("etcd", "leasehold", "naive").
	Name() string
	// Start brings up a fresh 3-node cluster on loopback, fsync on, keeping
	// its data under dataDir (an empty directory the harness removes after
	// Stop), and returns once the cluster has a leader and accepts writes.
	Start(ctx context.Context, dataDir string) error
	// NewSession opens one client connection (a client that knows every
	// member). The harness opens Options.Sessions of them for every target
	// and shares them between the agents.
	NewSession(ctx context.Context) (Session, error)
	// Stats reports the cluster's counters. The harness calls it before the
	// load starts, once a second while it runs, and after it ends. It must be
	// cheap and must not block for long (the context has a short deadline).
	Stats(ctx context.Context) (Stats, error)
	// Stop shuts the cluster down and releases everything Start acquired
	// (goroutines, listeners, files). It is called even when Start failed.
	Stop() error
}

// Stats is a target's view of its cluster. Fields that the target cannot
// observe are left zero with their Has flag false; the report then says
// "not measured" instead of printing a made-up number.
type Stats struct {
	// LeaderChanges counts leader changes (elections won) since Start
	// returned, cumulative.
	LeaderChanges int
	// AppliedIndex is the Raft applied index (the highest over the members).
	// Its growth over the run is the number of log entries the load cost.
	AppliedIndex uint64
	HasIndex     bool
	// QueueDepth is the leader's admission-queue depth right now.
	QueueDepth    int
	HasQueueDepth bool
	// AppliedAfterDeadline counts ops the servers themselves saw applied
	// after their deadline (must stay 0), cumulative since Start, for
	// targets that can audit it. The report's applied_after_deadline comes
	// from the clients' history for every target (Correctness); this
	// server-side figure is reported beside it.
	AppliedAfterDeadline    uint64
	HasAppliedAfterDeadline bool
	// Fsyncs counts the durable log writes of all members since Start,
	// from the target's own counters (etcd: its WAL fsync histogram's
	// count; Leasehold: the Raft log store's fsync'd commits), when
	// HasFsyncs.
	Fsyncs    uint64
	HasFsyncs bool
	// LeaderEndpoint is the client endpoint of the current leader, "" when
	// unknown (the ceilings mode's leader-only rows use it).
	LeaderEndpoint string
	// ServerRSSBytes is the resident set size of the target's server
	// processes, when they run outside the harness process. Zero means the
	// servers run in-process: the harness then samples its own process RSS.
	ServerRSSBytes uint64
}

// Session is one client connection. Every method must be safe for
// concurrent use by many agents, must honour ctx (return once it is done),
// and must return errors classified into the lease taxonomy: a *lease.Error
// (use lease.Errorf or &lease.Error{...}) whose code is one of
//
//	denied            claim: another holder holds the key (fill Holder/ExpiresIn when known)
//	not_held          extend/revoke: this holder does not hold the key (expired, or another holds it)
//	overloaded        back pressure: not applied, retry after RetryAfter
//	deadline_exceeded the op's deadline passed and it was NOT applied
//	unavailable       no server or no leader: not applied
//	not_leader        the server contacted is not the leader (and the session did not retry)
//	unknown           the outcome is unknown (a timeout where the op may or may not apply)
//	canceled          ctx was cancelled
//
// Anything that is not a *lease.Error is counted as unknown.
type Session interface {
	// Claim grants key to holder for d if it is free, extends it if holder
	// already holds it (a repeated claim is an extend), else fails with
	// denied.
	Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error)
	// Extend renews holder's lease on key for d from now, or fails with
	// not_held.
	Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error)
	// Revoke releases holder's lease on key; revoking a lease that is not
	// held succeeds.
	Revoke(ctx context.Context, key, holder string) error
	Close() error
}

// Grant is a successful claim or extend.
type Grant struct {
	// Token is the fencing token of the holder's tenure: strictly increasing
	// per key across holders, unchanged by extends. Leasehold: the Raft index
	// of the granting entry; etcd: the key's create revision.
	Token uint64
	// ExpiresIn is the remaining time the server reports, 0 when unknown.
	// The harness never trusts it for correctness: an agent's safe-until is
	// always its own call start + the duration it asked for.
	ExpiresIn time.Duration
	// Extended reports that a claim found the key already held by this
	// holder (the server's "extended" outcome) rather than granting it. The
	// analyser uses it to tell a tenure this call created from one an
	// earlier call created (see Correctness.AppliedAfterDeadline).
	Extended bool
}

// Keys are "namespace/group/name" (lease.ParseKey accepts them); holders are
// printable names without whitespace. Both are at most 64 bytes.

var (
	registryMu sync.Mutex
	registry   = map[string]func() Target{}
)

// preferredOrder is the order targets run in (and appear in reports) when
// they are registered; others follow alphabetically.
var preferredOrder = []string{"leasehold", "naive", "etcd"}

// Register makes a target available to Run and to `leasehold bench
// --target NAME`. newTarget is called once per run and must return a fresh,
// unstarted Target. Call it from an init function; registering a name twice
// panics.
func Register(name string, newTarget func() Target) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("bench: target " + name + " registered twice")
	}
	registry[name] = newTarget
}

// Registered lists the registered target names in run order.
func Registered() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		pi, pj := slices.Index(preferredOrder, names[i]), slices.Index(preferredOrder, names[j])
		if pi < 0 {
			pi = len(preferredOrder)
		}
		if pj < 0 {
			pj = len(preferredOrder)
		}
		if pi != pj {
			return pi < pj
		}
		return names[i] < names[j]
	})
	return names
}

// lookup returns the factories for names, or an error naming every unknown
// target and what is available.
func lookup(names []string) ([]func() Target, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	var out []func() Target
	var missing []string
	for _, n := range names {
		f, ok := registry[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		out = append(out, f)
	}
	if len(missing) > 0 {
		var avail []string
		for n := range registry {
			avail = append(avail, n)
		}
		sort.Strings(avail)
		return nil, fmt.Errorf("bench: target(s) %v not available in this build (registered: %v); "+
			"the leasehold and naive targets exist once the in-process cluster and client are wired in", missing, avail)
	}
	return out, nil
}

// Optional interfaces of targets and sessions.
type (
	// preparer sessions need per-holder setup before the load starts
	// (etcd: one session lease per agent). It is untimed.
	preparer interface {
		prepare(ctx context.Context, holders []string) error
	}
	// denialFiller sessions look a denial's expiry up in a call of its own,
	// made after the claim was answered and recorded, with its own deadline.
	denialFiller interface {
		fillDenial(ctx context.Context, err error)
	}
	// leaseDurationAware targets are told the agents' lease duration
	// before sessions are made.
	leaseDurationAware interface{ setLeaseDuration(time.Duration) }
	// observable targets say which client-side counters mean something for
	// them: deadlineAware (the target answers "not applied" when an op's
	// deadline passed, so applied-after-deadline is observable) and
	// renewalsInLog (every renewal is a log entry, so ops per entry
	// compares like with like). Targets without it are both.
	observable interface {
		deadlineAware() bool
		renewalsInLog() bool
	}
)

// fullyObservable is the default: both counters observable.
type fullyObservable struct{}

func (fullyObservable) deadlineAware() bool { return true }
func (fullyObservable) renewalsInLog() bool { return true }

func observability(t Target) observable {
	if o, ok := innerTarget(t).(observable); ok {
		return o
	}
	return fullyObservable{}
}

// innerTarget is the target a childTarget wraps, or t.
func innerTarget(t Target) Target {
	if c, ok := t.(*childTarget); ok {
		return c.inner
	}
	return t
}
