package linearize

import (
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/leasehold/leasehold/lease"
)

// forever stands for "no deadline" in replicated time, small enough that
// adding a lease duration cannot overflow.
const forever = time.Duration(math.MaxInt64 / 4)

// keyState is the model's state of one key. It is a comparable value so
// porcupine can compare and hash states.
//
// A lease's start and expiry are intervals: exact (lo == hi) once a result
// has stated them, wide after a maybe-applied op changed them at an unknown
// replicated time. Token 0 means "granted by a maybe-applied claim, not yet
// observed"; such a token must exceed tokenMin.
type keyState struct {
	now              time.Duration // replicated time of the last write linearized on the key
	holder           string        // "" when absent
	token, tokenMin  uint64
	startLo, startHi time.Duration
	expLo, expHi     time.Duration
	pins             string // sorted entities joined by "\x00"
	maxToken         uint64 // greatest token granted on the key so far
}

func (s keyState) held() bool   { return s.holder != "" }
func (s keyState) pinned() bool { return s.pins != "" }

func (s keyState) drop() keyState {
	return keyState{now: s.now, pins: s.pins, maxToken: s.maxToken}
}

// expire returns the states possible after expiring the lease at some
// replicated time in [lo, hi] (lo == hi for a known time).
func expire(s keyState, lo, hi time.Duration) []keyState {
	if !s.held() || s.pinned() {
		return []keyState{s}
	}
	var out []keyState
	if s.expHi >= lo { // alive: expiry >= T
		a := s
		if lo == hi {
			a.expLo = max(a.expLo, lo)
		}
		out = append(out, a)
	}
	if s.expLo < hi { // expired: expiry < T
		out = append(out, s.drop())
	}
	return out
}

// observe checks that a result's description of the lease (holder, token,
// start, expiry) fits s and returns s narrowed to it.
func observe(s keyState, o *Output) (keyState, bool) {
	if o.Holder != s.holder || o.Start < s.startLo || o.Start > s.startHi ||
		o.Expiry < s.expLo || o.Expiry > s.expHi {
		return s, false
	}
	switch {
	case s.token == 0 && o.Token > s.tokenMin && o.Token > s.maxToken:
		s.token, s.maxToken = o.Token, o.Token
	case s.token != o.Token:
		return s, false
	}
	s.startLo, s.startHi, s.expLo, s.expHi = o.Start, o.Start, o.Expiry, o.Expiry
	return s, true
}

func (s keyState) setPin(entity string, on bool) keyState {
	var set []string
	if s.pins != "" {
		set = strings.Split(s.pins, "\x00")
	}
	i, found := slices.BinarySearch(set, entity)
	switch {
	case on && !found:
		set = slices.Insert(set, i, entity)
	case !on && found:
		set = slices.Delete(set, i, i+1)
	}
	s.pins = strings.Join(set, "\x00")
	return s
}

// step is the nondeterministic step: all states possible after op.
func step(s keyState, op *Operation) []keyState {
	switch op.Applied() {
	case AppliedMaybe:
		return stepMaybe(s, op)
	case AppliedYes:
		if op.Input.Kind == KindGet {
			return stepGet(s, op)
		}
		return stepKnown(s, op)
	}
	return []keyState{s} // never in a checked history
}

// stepKnown applies a write with a definite answer at replicated time o.Now.
func stepKnown(s keyState, op *Operation) []keyState {
	in, o := &op.Input, &op.Output
	t := o.Now
	if t < s.now { // the log's replicated time never goes backwards
		return nil
	}
	s.now = t
	var out []keyState
	for _, b := range expire(s, t, t) {
		if n, ok := applyKnown(b, in, o, t); ok {
			out = append(out, n...)
		}
	}
	return out
}

func applyKnown(b keyState, in *Input, o *Output, t time.Duration) ([]keyState, bool) {
	ok := o.Code == lease.CodeOK
	switch in.Kind {
	case KindClaim:
		switch {
		case !b.held():
			if !ok || o.Outcome != lease.OutcomeGranted || o.Holder != in.Holder ||
				o.Token <= b.maxToken || o.Start != t || o.Expiry != t+in.Duration {
				return nil, false
			}
			b.holder, b.token, b.tokenMin, b.maxToken = in.Holder, o.Token, 0, o.Token
			b.startLo, b.startHi, b.expLo, b.expHi = t, t, o.Expiry, o.Expiry
			return []keyState{b}, true
		case b.holder == in.Holder:
			return lengthen(b, in, o, t)
		}
		if o.Code != lease.CodeDenied {
			return nil, false
		}
		n, good := observe(b, o)
		return []keyState{n}, good
	case KindExtend:
		if b.held() && b.holder == in.Holder {
			return lengthen(b, in, o, t)
		}
		return notHeld(b, o)
	case KindRevoke:
		switch {
		case !b.held():
			return []keyState{b}, ok && o.Outcome == lease.OutcomeAbsent
		case b.holder == in.Holder:
			if !ok || o.Outcome != lease.OutcomeRevoked {
				return nil, false
			}
			if _, good := observe(b, o); !good {
				return nil, false
			}
			return []keyState{b.drop()}, true
		}
		return notHeld(b, o)
	case KindPin:
		return []keyState{b.setPin(in.Holder, true)}, ok && o.Outcome == lease.OutcomePinned
	case KindUnpin:
		if !ok || o.Outcome != lease.OutcomeUnpinned {
			return nil, false
		}
		// A lease held past its expiry only by pins expires with its last pin.
		return expire(b.setPin(in.Holder, false), t, t), true
	}
	return nil, false
}

func notHeld(b keyState, o *Output) ([]keyState, bool) {
	if o.Code != lease.CodeNotHeld {
		return nil, false
	}
	if !b.held() {
		return []keyState{b}, o.Holder == ""
	}
	n, good := observe(b, o)
	return []keyState{n}, good
}

// lengthen checks a claim or extend by the holder: the lease becomes
// [t, t+d] unless that would shorten it, in which case it is unchanged.
func lengthen(b keyState, in *Input, o *Output, t time.Duration) ([]keyState, bool) {
	if o.Code != lease.CodeOK || o.Outcome != lease.OutcomeExtended {
		return nil, false
	}
	want := t + in.Duration
	lengthened := b.expLo < want && o.Start == t && o.Expiry == want
	unchanged := b.expHi >= want && o.Expiry >= want
	if !lengthened && !unchanged {
		return nil, false
	}
	if lengthened {
		// The lease may have been anywhere below want: accept the new bounds.
		b.startLo, b.startHi, b.expLo, b.expHi = t, t, want, want
		o2 := *o
		o2.Start, o2.Expiry = t, want
		n, good := observe(b, &o2)
		return []keyState{n}, good
	}
	n, good := observe(b, o)
	return []keyState{n}, good
}

// stepMaybe: the op either had no effect, or took effect at some replicated
// time T in [now, deadline] (the state machine refuses it after its deadline).
func stepMaybe(s keyState, op *Operation) []keyState {
	out := []keyState{s}
	in := &op.Input
	if !in.Kind.IsWrite() {
		return out
	}
	lo, hi := s.now, in.Deadline
	if hi == 0 {
		hi = forever
	}
	if hi < lo {
		return out
	}
	for _, b := range expire(s, lo, hi) {
		switch in.Kind {
		case KindClaim, KindExtend:
			switch {
			case b.held() && b.holder == in.Holder:
				b.startLo, b.startHi = min(b.startLo, lo), max(b.startHi, hi)
				b.expLo, b.expHi = max(b.expLo, lo+in.Duration), max(b.expHi, hi+in.Duration)
			case !b.held() && in.Kind == KindClaim:
				b.holder, b.token, b.tokenMin = in.Holder, 0, b.maxToken
				b.startLo, b.startHi, b.expLo, b.expHi = lo, hi, lo+in.Duration, hi+in.Duration
			}
			out = append(out, b)
		case KindRevoke:
			if b.held() && b.holder == in.Holder {
				b = b.drop()
			}
			out = append(out, b)
		case KindPin:
			out = append(out, b.setPin(in.Holder, true))
		case KindUnpin:
			out = append(out, expire(b.setPin(in.Holder, false), lo, hi)...)
		}
	}
	return out
}

// stepGet checks a linearizable read evaluated at replicated time o.Now.
// Like a write, it moves the key's clock: a read is served only after every
// entry proposed before it has applied, and is evaluated at the applied
// state's own time, so every write linearized before it has an earlier or
// equal Now and every write after it a later or equal one.
func stepGet(s keyState, op *Operation) []keyState {
	o := &op.Output
	v := o.Now
	if v < s.now {
		return nil
	}
	s.now = v
	if !o.Found {
		switch {
		case !s.held():
			return []keyState{s}
		case !s.pinned() && s.expLo < v:
			s.expHi = min(s.expHi, v-1)
			return []keyState{s}
		}
		return nil
	}
	if !s.held() || o.Pinned != s.pinned() || (!s.pinned() && s.expHi < v) {
		return nil
	}
	if !s.pinned() {
		s.expLo = max(s.expLo, v)
	}
	n, ok := observe(s, o)
	if !ok {
		return nil
	}
	return []keyState{n}
}

var hashSeed = maphash.MakeSeed()

// Model is the porcupine model of one Leasehold cluster's leases, partitioned
// by key. Inputs and outputs are both the *Operation.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partitionByKey,
		Init:      func() []interface{} { return []interface{}{keyState{}} },
		Step: func(state, input, _ interface{}) []interface{} {
			next := step(state.(keyState), input.(*Operation))
			out := make([]interface{}, len(next))
			for i, n := range next {
				out[i] = n
			}
			return out
		},
		Hash: func(state interface{}) uint64 {
			return maphash.Comparable(hashSeed, state.(keyState))
		},
		DescribeOperation: func(input, _ interface{}) string {
			op := input.(*Operation)
			return fmt.Sprintf("c%d %s %s -> %s", op.Client, op.Input.Kind, op.Input.Holder, op.describeOutput())
		},
		DescribeState: func(state interface{}) string { return state.(keyState).String() },
	}
	return nm.ToModel()
}

func (s keyState) String() string {
	var b strings.Builder
	if !s.held() {
		b.WriteString("absent")
	} else {
		tok := fmt.Sprint(s.token)
		if s.token == 0 {
			tok = fmt.Sprintf("?>%d", s.tokenMin)
		}
		fmt.Fprintf(&b, "%s token %s start %s expiry %s", s.holder, tok,
			span(s.startLo, s.startHi), span(s.expLo, s.expHi))
	}
	if s.pinned() {
		fmt.Fprintf(&b, " pins {%s}", strings.ReplaceAll(s.pins, "\x00", ","))
	}
	fmt.Fprintf(&b, " now %v max token %d", s.now, s.maxToken)
	return b.String()
}

func span(lo, hi time.Duration) string {
	if lo == hi {
		return lo.String()
	}
	if hi >= forever {
		return fmt.Sprintf("[%v, inf)", lo)
	}
	return fmt.Sprintf("[%v, %v]", lo, hi)
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	idx := map[lease.Key]int{}
	var out [][]porcupine.Operation
	for _, op := range history {
		k := op.Input.(*Operation).Input.Key
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], op)
	}
	return out
}
