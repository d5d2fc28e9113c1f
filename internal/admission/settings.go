package admission

import (
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Settings are the admission queue's knobs. They are swapped live with
// Queue.SetSettings (later fed from the replicated cluster settings); every
// field applies from the next admission or the next entry on.
type Settings struct {
	// MaxOpsPerEntry caps the commands in one Raft log entry.
	MaxOpsPerEntry int
	// MaxBytesPerEntry caps an entry's encoded size, counted with
	// logentry.CommandSize (an upper bound), so a real entry is smaller.
	MaxBytesPerEntry int
	// MaxInFlight is how many entries may be proposed and not yet applied.
	// Only whole entries go out while another is in flight (Core.Ready):
	// more than one keeps the log busy when the queue holds more than an
	// entry; a partial entry fills while one commits (group commit).
	MaxInFlight int
	// MaxQueuedOps is the hard cap on queued ops, a memory bound that holds
	// even if the drain-time estimate is wrong.
	MaxQueuedOps int
	// ClaimShare is the share of every entry (in ops and in bytes) kept for
	// claims, pins and unpins while any wait, so renewals cannot starve them.
	ClaimShare float64
	// Deadlines are the per-op-type defaults; an op's deadline is the
	// earlier of its caller's context deadline and now plus this.
	Deadlines Deadlines
	// DeadlineMargin is subtracted from every deadline: an op with less than
	// this left is not proposed, and the deadline written into the entry (in
	// replicated time) is this much earlier than the caller's, which covers
	// the gap between reading the leader's clock and the entry being stamped.
	DeadlineMargin time.Duration
}

// Deadlines are the default deadlines per op type. Renewals get longer ones
// than claims: a holder losing its lease because its extend timed out in a
// queue is the failure that churned Juju's leaders, while a late claim just
// retries.
type Deadlines struct {
	Claim, Extend, Revoke, Pin, Unpin time.Duration
}

// For returns the default deadline of op (the claim one for unknown ops).
func (d Deadlines) For(op lease.Op) time.Duration {
	switch op {
	case lease.OpExtend:
		return d.Extend
	case lease.OpRevoke:
		return d.Revoke
	case lease.OpPin:
		return d.Pin
	case lease.OpUnpin:
		return d.Unpin
	default:
		return d.Claim
	}
}

// DefaultSettings returns the settings of a new cluster.
func DefaultSettings() Settings {
	return Settings{
		MaxOpsPerEntry:   1024,
		MaxBytesPerEntry: 1 << 20,
		MaxInFlight:      3,
		MaxQueuedOps:     1 << 17,
		ClaimShare:       0.2,
		Deadlines: Deadlines{
			Claim:  3 * time.Second,
			Extend: 10 * time.Second,
			Revoke: 10 * time.Second,
			Pin:    5 * time.Second,
			Unpin:  5 * time.Second,
		},
		DeadlineMargin: 20 * time.Millisecond,
	}
}

// minEntryBytes is more than the largest possible command (four 256-byte
// names plus varints), so one op always fits an entry.
const minEntryBytes = 4096

// Validate reports the first bad field as a CodeInvalidArgument *lease.Error.
func (s Settings) Validate() error {
	switch {
	case s.MaxOpsPerEntry < 1 || s.MaxOpsPerEntry > 1<<16:
		return lease.InvalidArgument("max_ops_per_entry", "must be in [1, 65536], not %d", s.MaxOpsPerEntry)
	case s.MaxBytesPerEntry < minEntryBytes || s.MaxBytesPerEntry > 64<<20:
		return lease.InvalidArgument("max_bytes_per_entry", "must be in [%d, 64 MiB], not %d", minEntryBytes, s.MaxBytesPerEntry)
	case s.MaxInFlight < 1 || s.MaxInFlight > 64:
		return lease.InvalidArgument("max_in_flight", "must be in [1, 64], not %d", s.MaxInFlight)
	case s.MaxQueuedOps < s.MaxOpsPerEntry || s.MaxQueuedOps > 1<<24:
		return lease.InvalidArgument("max_queued_ops", "must be in [max_ops_per_entry, 16777216], not %d", s.MaxQueuedOps)
	case !(s.ClaimShare >= 0.01 && s.ClaimShare <= 0.5):
		return lease.InvalidArgument("claim_share", "must be in [0.01, 0.5], not %v", s.ClaimShare)
	case s.DeadlineMargin < 0 || s.DeadlineMargin > time.Second:
		return lease.InvalidArgument("deadline_margin", "must be in [0, 1s], not %v", s.DeadlineMargin)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"deadlines.claim", s.Deadlines.Claim}, {"deadlines.extend", s.Deadlines.Extend},
		{"deadlines.revoke", s.Deadlines.Revoke}, {"deadlines.pin", s.Deadlines.Pin},
		{"deadlines.unpin", s.Deadlines.Unpin},
	} {
		if d.v <= 2*s.DeadlineMargin || d.v > 10*time.Minute {
			return lease.InvalidArgument(d.field, "must be in (2*deadline_margin, 10m], not %v", d.v)
		}
	}
	return nil
}

// Lane is a priority class. Clock ticks are not queued here (the node
// proposes them itself), so there are two.
type Lane uint8

const (
	// LaneRenewal holds extends and revokes: holders keeping or giving up
	// what they have. It is served first.
	LaneRenewal Lane = iota
	// LaneClaim holds claims, pins and unpins. It keeps ClaimShare.
	LaneClaim
	numLanes
)

// LaneOf returns the lane op is queued in.
func LaneOf(op lease.Op) Lane {
	if op.IsRenewal() {
		return LaneRenewal
	}
	return LaneClaim
}

func (l Lane) String() string {
	if l == LaneRenewal {
		return "renewal"
	}
	return "claim"
}

// Reason says why an op was answered without being applied.
type Reason uint8

const (
	// ReasonOverloaded: rejected at admission, expected wait past its deadline.
	ReasonOverloaded Reason = iota
	// ReasonQueueFull: rejected at admission by the hard cap.
	ReasonQueueFull
	// ReasonDeadline: its deadline passed while it was queued; not proposed.
	ReasonDeadline
	// ReasonCanceled: its caller went away before it was proposed.
	ReasonCanceled
)

func (r Reason) String() string {
	return [...]string{"overloaded", "queue_full", "deadline", "canceled"}[r]
}

// Hooks are metric callbacks; nil ones are skipped. They are called with the
// queue's lock held, so they must be cheap (a counter or histogram update)
// and must not call back into the Queue. Keeping them as plain funcs keeps
// Prometheus out of this package.
type Hooks struct {
	// Depth reports a lane's queue depth after it changed.
	Depth func(l Lane, depth int)
	// Wait reports how long an op queued before it was proposed.
	Wait func(l Lane, d time.Duration)
	// Entry reports a proposed entry's size.
	Entry func(ops, bytes int)
	// Committed reports an entry's time from proposal to result; err is
	// the entry-level error, if any.
	Committed func(ops int, latency time.Duration, err error)
	// Rejected counts ops answered without being proposed.
	Rejected func(r Reason, l Lane, n int)
}

// Stats is a snapshot of the queue.
type Stats struct {
	Depth    [numLanes]int // queued ops per lane (index with LaneRenewal, LaneClaim)
	InFlight int           // entries proposed and not yet applied
	// DrainRate is the estimated ops/s the log commits when saturated.
	DrainRate float64
	// Measured reports whether CommitLatency (and so DrainRate) comes from
	// completed entries rather than the initial guess.
	Measured bool
	// CommitLatency is the smoothed time from proposal to applied.
	CommitLatency time.Duration
	// EstimatedWait is what an op arriving now in each lane is expected to wait.
	EstimatedWait [numLanes]time.Duration
}

// Queued is the number of ops waiting in every lane.
func (s Stats) Queued() int {
	n := 0
	for _, d := range s.Depth {
		n += d
	}
	return n
}
