package linearize

import (
	"fmt"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Kind is the kind of a recorded operation.
type Kind uint8

const (
	KindClaim Kind = iota + 1
	KindExtend
	KindRevoke
	KindPin
	KindUnpin
	KindGet
	numKinds
)

var kindNames = [numKinds]string{"", "claim", "extend", "revoke", "pin", "unpin", "get"}

func (k Kind) String() string {
	if k == 0 || k >= numKinds {
		return "invalid"
	}
	return kindNames[k]
}

// KindOf maps a lease command op to a Kind.
func KindOf(op lease.Op) Kind {
	switch op {
	case lease.OpClaim:
		return KindClaim
	case lease.OpExtend:
		return KindExtend
	case lease.OpRevoke:
		return KindRevoke
	case lease.OpPin:
		return KindPin
	case lease.OpUnpin:
		return KindUnpin
	}
	return 0
}

// IsWrite reports whether the op goes through the log.
func (k Kind) IsWrite() bool { return k >= KindClaim && k <= KindUnpin }

// Input is what a client asked for.
type Input struct {
	Kind Kind
	Key  lease.Key
	// Holder is the holder (claim, extend, revoke) or pinning entity (pin, unpin).
	Holder   string
	Duration time.Duration
	// Deadline is the op's deadline in replicated time; 0 means none.
	Deadline time.Duration
	// Stale marks a Get served as a stale read from any replica; stale reads
	// are not checked for linearizability.
	Stale bool
}

// Output is what the client was told. For writes, Code/Outcome/Holder/Token/
// Start/Expiry/Now are the fields of the state machine's lease.Result. For
// Get, Found says whether a lease was visible, Holder/Token/Start/Expiry/
// Pinned describe it, and Now is the replicated time the read was evaluated at.
type Output struct {
	Code    lease.Code
	Outcome lease.Outcome
	Holder  string
	Token   uint64
	Start   time.Duration
	Expiry  time.Duration
	Now     time.Duration
	Found   bool
	Pinned  bool
	// NoTime marks a Denied or NotHeld answer that did not say the
	// replicated time it was applied at (a lease.Error with Now 0, not made
	// by the state machine; over gRPC they carry token, start, expiry and
	// now_ns). Such an op is known to have had no effect, and is left out
	// of the checks like AppliedNo ops.
	NoTime bool
}

// FromResult converts a state machine result.
func FromResult(r lease.Result) Output {
	return Output{Code: r.Code, Outcome: r.Outcome, Holder: r.Holder, Token: r.Token,
		Start: r.Start, Expiry: r.Expiry, Now: r.Now}
}

// FromInfo converts a Get answer evaluated at replicated time at.
func FromInfo(info lease.Info, found bool, at time.Duration) Output {
	if !found {
		return Output{Now: at}
	}
	return Output{Holder: info.Holder, Token: info.Token, Start: info.Start, Expiry: info.Expiry,
		Now: at, Found: true, Pinned: info.Pinned}
}

// FromError converts a call's error: the code of a *lease.Error, or
// CodeUnknown for any other error (a client-side timeout, a broken
// connection after sending), which is "maybe applied".
func FromError(err error) Output { return Output{Code: lease.CodeOf(err)} }

// Operation is one call in a history. Call and Return are local monotonic
// times (nanoseconds since the recording started).
type Operation struct {
	ID       int
	Client   int
	Input    Input
	Call     int64
	Return   int64
	Returned bool
	Output   Output
}

// Applied classifies the op's effect.
type Applied uint8

const (
	// AppliedYes: the state machine applied the op and the output is its answer
	// (success, Denied or NotHeld).
	AppliedYes Applied = iota
	// AppliedNo: the op definitely had no effect (DeadlineExceeded, Overloaded,
	// InvalidArgument, NotLeader, Unavailable, auth errors).
	AppliedNo
	// AppliedMaybe: the op may or may not have taken effect, at an unknown
	// replicated time (Unknown, Canceled, client-side timeout, never returned).
	AppliedMaybe
)

// Applied says whether the op took effect.
func (o *Operation) Applied() Applied {
	if !o.Returned {
		return AppliedMaybe
	}
	switch o.Output.Code {
	case lease.CodeDenied, lease.CodeNotHeld:
		if o.Output.NoTime {
			return AppliedNo
		}
		return AppliedYes
	case lease.CodeOK:
		return AppliedYes
	case lease.CodeUnknown, lease.CodeCanceled:
		return AppliedMaybe
	}
	return AppliedNo
}

func (o *Operation) String() string {
	in := &o.Input
	s := fmt.Sprintf("#%d c%d %s %s %s", o.ID, o.Client, in.Kind, in.Key, in.Holder)
	if in.Kind == KindClaim || in.Kind == KindExtend {
		s += fmt.Sprintf(" for %v", in.Duration)
	}
	if in.Deadline != 0 {
		s += fmt.Sprintf(" deadline %v", in.Deadline)
	}
	if in.Stale {
		s += " stale"
	}
	s += fmt.Sprintf(" [call %v", time.Duration(o.Call))
	if !o.Returned {
		return s + ", never returned]"
	}
	s += fmt.Sprintf(", return %v] -> ", time.Duration(o.Return))
	return s + o.describeOutput()
}

func (o *Operation) describeOutput() string {
	out := &o.Output
	if o.Applied() != AppliedYes {
		return out.Code.String()
	}
	var s string
	switch {
	case o.Input.Kind == KindGet && !out.Found:
		s = "absent"
	case o.Input.Kind == KindGet:
		s = "held"
	case out.Code == lease.CodeOK:
		s = out.Outcome.String()
	default:
		s = out.Code.String()
	}
	if out.Holder != "" {
		s += fmt.Sprintf(" holder %s token %d lease [%v, %v]", out.Holder, out.Token, out.Start, out.Expiry)
	}
	if out.Pinned {
		s += " pinned"
	}
	return s + fmt.Sprintf(" at replicated %v", out.Now)
}

// Recorder records a history. It is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	clock func() int64
	ops   []Operation
	open  int
}

// NewRecorder returns a recorder whose times are nanoseconds of the
// monotonic clock since now.
func NewRecorder() *Recorder {
	start := time.Now()
	return NewRecorderClock(func() int64 { return int64(time.Since(start)) })
}

// NewRecorderClock returns a recorder reading times from clock, which must not
// go backwards (tests use a counter).
func NewRecorderClock(clock func() int64) *Recorder { return &Recorder{clock: clock} }

// Invoke records the start of a call and returns its id for Return.
func (r *Recorder) Invoke(client int, in Input) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := len(r.ops)
	r.ops = append(r.ops, Operation{ID: id, Client: client, Input: in, Call: r.clock()})
	r.open++
	return id
}

// Return records the end of call id. A second Return for the same id panics:
// it is a bug in the test harness.
func (r *Recorder) Return(id int, out Output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op := &r.ops[id]
	if op.Returned {
		panic(fmt.Sprintf("linearize: op %d returned twice", id))
	}
	op.Return, op.Returned, op.Output = r.clock(), true, out
	r.open--
}

// ReturnResult records a write's state machine result.
func (r *Recorder) ReturnResult(id int, res lease.Result) { r.Return(id, FromResult(res)) }

// ReturnError records a call that failed with err (nil err is not allowed:
// use Return or ReturnResult).
func (r *Recorder) ReturnError(id int, err error) { r.Return(id, FromError(err)) }

// Open is the number of calls that have not returned.
func (r *Recorder) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

// History returns a copy of the history so far.
func (r *Recorder) History() []Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Operation(nil), r.ops...)
}
