package lease

import "time"

// Op is the kind of a lease command.
type Op uint8

const (
	OpInvalid Op = iota
	// OpClaim grants an absent lease, extends it when the holder already holds
	// it (so a retried claim is safe), and is denied when another holder has it.
	OpClaim
	// OpExtend extends a lease the holder holds; it never shortens one.
	OpExtend
	// OpRevoke releases a lease the holder holds; revoking an absent lease succeeds.
	OpRevoke
	// OpPin stops a lease from expiring until the entity (Command.Holder) unpins it.
	OpPin
	// OpUnpin removes the entity's pin.
	OpUnpin
	// OpQueueClaim is a claim that waits its turn: granted or extended like
	// OpClaim, but when another holder has the lease the claimant joins the
	// key's FIFO (Command.Wait is how long the place is kept without a
	// refresh) and is granted the lease by the state machine when it is
	// released. Re-sending it refreshes the place; it never loses it.
	OpQueueClaim
	// OpCancelQueue removes the holder's queued claim; it never revokes.
	OpCancelQueue
	numOps
)

var opNames = [numOps]string{"invalid", "claim", "extend", "revoke", "pin", "unpin", "queue_claim", "cancel_queue"}

func (o Op) String() string {
	if o >= numOps {
		return "invalid"
	}
	return opNames[o]
}

// Valid reports whether o is a known op.
func (o Op) Valid() bool { return o > OpInvalid && o < numOps }

// IsRenewal reports whether the op keeps or gives up something the caller
// already has (extend, revoke, cancelling a queued claim); the admission
// queue serves these before claims.
func (o Op) IsRenewal() bool { return o == OpExtend || o == OpRevoke || o == OpCancelQueue }

// Command is one lease operation as it travels through the admission queue
// and the Raft log.
type Command struct {
	Op  Op
	Key Key
	// Holder is the holder for claim/extend/revoke and the pinning entity for pin/unpin.
	Holder string
	// Duration is the requested lease duration (claim, extend).
	Duration time.Duration
	// Deadline is stated in replicated time: the state machine refuses to
	// apply the command once its clock has passed it.
	Deadline time.Duration
	// Wait is how long a queued claim keeps its place without a refresh
	// (OpQueueClaim only; at most MaxQueueWait).
	Wait time.Duration
}

// MaxQueueWait bounds Command.Wait, so a queued claimant that vanished
// without cancelling is forgotten within it.
const MaxQueueWait = 5 * time.Minute

// Validate checks the command against the limits. It does not check the deadline.
func (c *Command) Validate(l Limits) error {
	if !c.Op.Valid() {
		return InvalidArgument("op", "unknown op %d", c.Op)
	}
	if err := c.Key.Validate(); err != nil {
		return err
	}
	field := "holder"
	if c.Op == OpPin || c.Op == OpUnpin {
		field = "entity"
	}
	if err := ValidateName(field, c.Holder); err != nil {
		return err
	}
	if c.Op == OpQueueClaim && (c.Wait <= 0 || c.Wait > MaxQueueWait) {
		return InvalidArgument("wait", "wait %v is outside (0, %v]", c.Wait, MaxQueueWait)
	}
	if c.Op == OpClaim || c.Op == OpExtend || c.Op == OpQueueClaim {
		// Only the lower bound: a renewal above MaxDuration is clamped to it
		// by the state machine (so shrinking max_duration strands no
		// holder), and a new grant above it is refused there.
		if c.Duration < l.MinDuration || c.Duration > MaxDurationCap {
			return InvalidArgument("duration", "duration %v is outside [%v, %v]", c.Duration, l.MinDuration, MaxDurationCap)
		}
	}
	return nil
}

// Limits bound what callers may ask for. They are cluster settings,
// replicated through the log; a cluster that never changed them runs with
// DefaultLimits.
type Limits struct {
	MinDuration time.Duration
	MaxDuration time.Duration
}

// The default limits, fixed in code: every replica starts from them, so no
// apply result depends on a server's flags.
const (
	DefaultMinDuration = time.Second
	DefaultMaxDuration = 5 * time.Minute
)

// Bounds of every Limits a cluster may adopt.
const (
	MinDurationFloor = time.Millisecond
	MaxDurationCap   = 24 * time.Hour
)

// DefaultLimits are the limits of a new cluster.
var DefaultLimits = Limits{MinDuration: DefaultMinDuration, MaxDuration: DefaultMaxDuration}

// Validate checks that the limits are ones a cluster may adopt. The state
// machine applies this rule, and only this rule, to the limits of a
// settings entry.
func (l Limits) Validate() error {
	switch {
	case l.MinDuration < MinDurationFloor:
		return InvalidArgument("min_duration", "min_duration must be at least %v, not %v", MinDurationFloor, l.MinDuration)
	case l.MaxDuration < l.MinDuration || l.MaxDuration > MaxDurationCap:
		return InvalidArgument("max_duration", "max_duration must be in [min_duration, %v], not %v", MaxDurationCap, l.MaxDuration)
	}
	return nil
}

// Clamp returns d moved into [MinDuration, MaxDuration].
func (l Limits) Clamp(d time.Duration) time.Duration {
	return min(max(d, l.MinDuration), l.MaxDuration)
}

// CheckDuration validates a requested lease duration.
func (l Limits) CheckDuration(d time.Duration) error {
	if d < l.MinDuration || d > l.MaxDuration {
		return InvalidArgument("duration", "duration %v is outside [%v, %v]", d, l.MinDuration, l.MaxDuration)
	}
	return nil
}

// Outcome says what a successful command did.
type Outcome uint8

const (
	OutcomeNone     Outcome = iota
	OutcomeGranted          // claim of an absent lease
	OutcomeExtended         // claim or extend by the holder (possibly a no-op)
	OutcomeRevoked          // revoke removed the lease
	OutcomeAbsent           // revoke of an absent lease (idempotent success)
	OutcomePinned
	OutcomeUnpinned
	OutcomeQueued   // queued claim waiting behind Result.Holder at Result.Position
	OutcomeDequeued // cancel removed a queued claim (OutcomeAbsent if there was none)
)

var outcomeNames = [...]string{"none", "granted", "extended", "revoked", "absent", "pinned", "unpinned", "queued", "dequeued"}

func (o Outcome) String() string {
	if int(o) >= len(outcomeNames) {
		return "none"
	}
	return outcomeNames[o]
}

// Result is the state machine's answer to one command. Code is CodeOK on
// success. For claims and extends, Token, Start and Expiry describe the lease
// after the command (Expiry-Start is the duration actually applied, which is
// less than the one asked for when a renewal was clamped to MaxDuration); for a denial, Holder and Expiry describe the other
// holder's lease. Now is the replicated time the command was applied at.
type Result struct {
	Code    Code
	Outcome Outcome
	Holder  string
	Token   uint64
	Start   time.Duration
	Expiry  time.Duration
	Now     time.Duration
	// Position is a queued claim's 1-based place in the key's queue, and
	// WaitExpiry (replicated time) when the place is dropped without a refresh.
	Position   int
	WaitExpiry time.Duration
	// Field and Message describe a CodeInvalidArgument result.
	Field   string
	Message string
	// RetryAfter (CodeOverloaded) and LeaderID, LeaderAddr (CodeNotLeader)
	// keep what a failed op's error said when the ops of one call fail
	// differently and each carries its own answer. The state machine never
	// sets them.
	RetryAfter           time.Duration
	LeaderID, LeaderAddr string
}

// Err converts a failed result into an *Error (nil on success).
func (r *Result) Err() error {
	if r.Code == CodeOK {
		return nil
	}
	e := &Error{Code: r.Code, Message: r.Message, Field: r.Field,
		RetryAfter: r.RetryAfter, LeaderID: r.LeaderID, LeaderAddr: r.LeaderAddr}
	if r.Code == CodeDenied || r.Code == CodeNotHeld {
		e.Holder, e.Token, e.Start, e.Expiry, e.Now = r.Holder, r.Token, r.Start, r.Expiry, r.Now
	}
	if r.Code == CodeDenied {
		e.ExpiresIn = r.Expiry - r.Now
	}
	return e
}

// Info describes a lease as a reader sees it.
type Info struct {
	Key    Key
	Holder string
	Token  uint64
	Start  time.Duration
	Expiry time.Duration
	// Pinned reports whether any entity pins the lease; a pinned lease does not expire.
	Pinned bool
}

// EventKind is the kind of a lease event seen by watchers.
type EventKind uint8

const (
	EventClaimed EventKind = iota + 1
	EventExtended
	EventRevoked
	EventExpired
	EventPinned
	EventUnpinned
)

var eventNames = [...]string{"", "claimed", "extended", "revoked", "expired", "pinned", "unpinned"}

func (k EventKind) String() string {
	if int(k) >= len(eventNames) || k == 0 {
		return "unknown"
	}
	return eventNames[k]
}

// Event is a change to a lease, produced by the state machine as it applies
// the log. Index is the Raft index of the entry; Now is the replicated time.
type Event struct {
	Kind   EventKind
	Key    Key
	Holder string // holder, or pinning entity for pin events
	Token  uint64
	Expiry time.Duration
	Index  uint64
	Now    time.Duration
}
