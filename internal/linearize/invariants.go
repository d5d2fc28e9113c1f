package linearize

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// obs is one statement the system made: an op's answer, or a replica's final
// state (op nil). ret is the local time the statement was known by (the op's
// return; MaxInt64 for a final state): an op called after ret cannot have
// influenced it.
type obs struct {
	op      *Operation
	replica string
	at      time.Duration
	ret     int64
}

func (o obs) String() string {
	if o.op != nil {
		return o.op.String()
	}
	return fmt.Sprintf("final state of replica %s at replicated %v", o.replica, o.at)
}

type span2 struct{ start, expiry time.Duration }

// tenure is everything observed about one token's lease on one key.
type tenure struct {
	key              lease.Key
	token            uint64
	holder           string
	start, end       time.Duration // earliest observed start, latest observed expiry
	startObs, endObs obs
	grants           []*Operation // Granted answers carrying the token
	revoked          bool
	revokedAt        time.Duration
	revokeOp         *Operation
	versions         map[span2]obs
	otherHolder      *obs // an observation naming another holder with this token
	otherHolderName  string
	firstObs         obs
}

type checker struct {
	ops        []*Operation
	finals     []*final // replicas at the highest applied index
	byKey      map[lease.Key][]*Operation
	tenures    map[lease.Key]map[uint64]*tenure
	violations []Violation
}

func newChecker(ops []*Operation, finals []*final) *checker {
	c := &checker{ops: ops, byKey: map[lease.Key][]*Operation{}, tenures: map[lease.Key]map[uint64]*tenure{}}
	var top uint64
	for _, f := range finals {
		top = max(top, f.index)
	}
	for _, f := range finals {
		if f.index == top {
			c.finals = append(c.finals, f)
		}
	}
	for _, op := range ops {
		c.byKey[op.Input.Key] = append(c.byKey[op.Input.Key], op)
	}
	return c
}

func (c *checker) fail(n int, k lease.Key, ops []*Operation, format string, args ...any) {
	c.violations = append(c.violations, Violation{Invariant: n, Key: k, Message: fmt.Sprintf(format, args...), Ops: ops})
}

func (c *checker) run() {
	c.collect()
	keys := make([]lease.Key, 0, len(c.byKey))
	for k := range c.byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b lease.Key) int { return cmp.Compare(a.String(), b.String()) })
	for _, k := range keys {
		ts := c.sortedTenures(k)
		c.checkOverlaps(k, ts)
		c.checkTokens(k, ts)
		c.checkAbsences(k, ts)
		c.checkDeadlines(k, ts)
		c.checkFinal(k)
	}
	for _, op := range c.ops {
		if !op.Returned {
			c.fail(6, op.Input.Key, []*Operation{op}, "call never returned a result or an error")
		}
	}
}

func opObs(op *Operation) obs { return obs{op: op, at: op.Output.Now, ret: op.Return} }

// collect builds the tenures from every statement about a lease.
func (c *checker) collect() {
	for _, op := range c.ops {
		if op.Applied() != AppliedYes || op.Input.Stale {
			continue
		}
		o := &op.Output
		if o.Holder == "" || o.Token == 0 {
			continue
		}
		t := c.note(op.Input.Key, o.Holder, o.Token, o.Start, o.Expiry, opObs(op))
		if o.Code == lease.CodeOK && o.Outcome == lease.OutcomeGranted {
			t.grants = append(t.grants, op)
		}
		if o.Code == lease.CodeOK && o.Outcome == lease.OutcomeRevoked && (!t.revoked || o.Now < t.revokedAt) {
			t.revoked, t.revokedAt, t.revokeOp = true, o.Now, op
		}
	}
	for _, f := range c.finals {
		for k, in := range f.leases {
			c.note(k, in.Holder, in.Token, in.Start, in.Expiry, obs{replica: f.id, at: f.now, ret: math.MaxInt64})
		}
	}
}

func (c *checker) note(k lease.Key, holder string, token uint64, start, expiry time.Duration, o obs) *tenure {
	m := c.tenures[k]
	if m == nil {
		m = map[uint64]*tenure{}
		c.tenures[k] = m
	}
	t := m[token]
	if t == nil {
		t = &tenure{key: k, token: token, holder: holder, start: start, end: expiry, startObs: o, endObs: o,
			versions: map[span2]obs{}, firstObs: o}
		m[token] = t
	}
	if holder != t.holder && t.otherHolder == nil {
		t.otherHolder, t.otherHolderName = &o, holder
	}
	if start < t.start {
		t.start, t.startObs = start, o
	}
	if expiry > t.end {
		t.end, t.endObs = expiry, o
	}
	if prev, ok := t.versions[span2{start, expiry}]; !ok || o.ret < prev.ret {
		t.versions[span2{start, expiry}] = o
	}
	return t
}

func (c *checker) sortedTenures(k lease.Key) []*tenure {
	var ts []*tenure
	for _, t := range c.tenures[k] {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *tenure) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.token, b.token)) })
	return ts
}

// maybe reports whether an op on k of one of kinds by holder may have taken
// effect at a replicated time >= after, given it was called by ret.
func (c *checker) maybe(k lease.Key, holder string, after time.Duration, ret int64, kinds ...Kind) *Operation {
	for _, op := range c.byKey[k] {
		if op.Applied() == AppliedMaybe && op.Input.Holder == holder && slices.Contains(kinds, op.Input.Kind) &&
			op.Call <= ret && (op.Input.Deadline == 0 || op.Input.Deadline >= after) {
			return op
		}
	}
	return nil
}

func (t *tenure) alive(at time.Duration) bool {
	return t.start < at && at <= t.end && !(t.revoked && at >= t.revokedAt)
}

func (t *tenure) describe() string {
	s := fmt.Sprintf("%s's lease token %d held [%v, %v]", t.holder, t.token, t.start, t.end)
	if t.revoked {
		s += fmt.Sprintf(" revoked at %v", t.revokedAt)
	}
	return s
}

func opsOf(os ...obs) []*Operation {
	var out []*Operation
	for _, o := range os {
		if o.op != nil && !slices.Contains(out, o.op) {
			out = append(out, o.op)
		}
	}
	return out
}

// checkOverlaps: invariant 1 (two holders at once) and, for two tokens of
// the same holder, invariant 3 (the first lease vanished early).
func (c *checker) checkOverlaps(k lease.Key, ts []*tenure) {
	for i, a := range ts {
		for _, b := range ts[i+1:] {
			overlap := b.start <= a.end
			if a.revoked {
				overlap = b.start < a.revokedAt
			}
			if !overlap || c.maybe(k, a.holder, a.start, b.startObs.ret, KindRevoke) != nil {
				continue
			}
			n, what := 1, "two holders at once"
			if a.holder == b.holder {
				n, what = 3, "lease re-granted to its holder with a new token before it expired"
			}
			c.fail(n, k, opsOf(a.endObs, a.startObs, b.startObs), "%s: %s, yet %s from %v", what, a.describe(), b.describe(), b.start)
		}
	}
}

// checkTokens: invariant 2.
func (c *checker) checkTokens(k lease.Key, ts []*tenure) {
	for _, t := range ts {
		if t.otherHolder != nil {
			c.fail(2, k, opsOf(t.firstObs, *t.otherHolder), "token %d given to both %s and %s", t.token, t.holder, t.otherHolderName)
		}
		for _, g := range t.grants[min(1, len(t.grants)):] {
			if g.Output.Now != t.grants[0].Output.Now {
				c.fail(2, k, []*Operation{t.grants[0], g}, "token %d granted twice, at %v and %v",
					t.token, t.grants[0].Output.Now, g.Output.Now)
				break
			}
		}
	}
	for i, a := range ts {
		for _, b := range ts[i+1:] {
			if a.start < b.start && a.token > b.token {
				c.fail(2, k, opsOf(a.startObs, b.startObs), "token went backwards: %s, then %s", a.describe(), b.describe())
			}
		}
	}
}

// checkAbsences: invariant 3. A definite statement that the key is absent at
// replicated time t while an observed lease covers t means the lease expired
// (or was dropped) early.
func (c *checker) checkAbsences(k lease.Key, ts []*tenure) {
	for _, op := range c.byKey[k] {
		if op.Applied() != AppliedYes || op.Input.Stale || op.Output.Holder != "" {
			continue
		}
		o := &op.Output
		absent := (op.Input.Kind == KindGet && !o.Found) ||
			(o.Code == lease.CodeOK && o.Outcome == lease.OutcomeAbsent) || o.Code == lease.CodeNotHeld
		if !absent {
			continue
		}
		for _, t := range ts {
			if t.alive(o.Now) && c.maybe(k, t.holder, t.start, op.Return, KindRevoke) == nil {
				c.fail(3, k, append(opsOf(t.startObs, t.endObs), op), "%s, yet the key was absent at %v", t.describe(), o.Now)
			}
		}
	}
}

// checkDeadlines: invariant 4. Every applied op was applied by its deadline,
// and no DeadlineExceeded op took effect: every lease version observed must
// come from an op that was not refused.
func (c *checker) checkDeadlines(k lease.Key, ts []*tenure) {
	for _, op := range c.byKey[k] {
		if op.Applied() == AppliedYes && op.Input.Kind.IsWrite() && op.Input.Deadline != 0 && op.Output.Now > op.Input.Deadline {
			c.fail(4, k, []*Operation{op}, "applied at replicated %v, after its deadline %v", op.Output.Now, op.Input.Deadline)
		}
	}
	for _, t := range ts {
		vs := make([]span2, 0, len(t.versions))
		for v := range t.versions {
			vs = append(vs, v)
		}
		slices.SortFunc(vs, func(a, b span2) int { return cmp.Compare(a.start, b.start) })
		for _, v := range vs {
			o := t.versions[v]
			if de := c.unexplained(k, t, v, o); de != nil {
				c.fail(4, k, append(opsOf(o), de), "%s's lease token %d [%v, %v] was made by an op that got DeadlineExceeded",
					t.holder, t.token, v.start, v.expiry)
			}
		}
	}
	for _, f := range c.finals {
		for _, e := range f.pins[k] {
			var de *Operation
			explained := false
			for _, op := range c.byKey[k] {
				if op.Input.Kind != KindPin || op.Input.Holder != e {
					continue
				}
				switch {
				case op.Applied() == AppliedMaybe || (op.Applied() == AppliedYes && op.Output.Code == lease.CodeOK):
					explained = true
				case op.Output.Code == lease.CodeDeadlineExceeded:
					de = op
				}
			}
			if !explained && de != nil {
				c.fail(4, k, []*Operation{de}, "replica %s has %s's pin, but its only pin got DeadlineExceeded", f.id, e)
			}
		}
	}
}

// unexplained returns a DeadlineExceeded op that is the only possible cause
// of lease version v, or nil.
func (c *checker) unexplained(k lease.Key, t *tenure, v span2, o obs) *Operation {
	var de *Operation
	for _, op := range c.byKey[k] {
		in := &op.Input
		if (in.Kind != KindClaim && in.Kind != KindExtend) || in.Holder != t.holder || in.Duration != v.expiry-v.start || op.Call > o.ret {
			continue
		}
		out := &op.Output
		switch op.Applied() {
		case AppliedYes:
			if out.Code == lease.CodeOK && out.Token == t.token && out.Start == v.start && out.Expiry == v.expiry {
				return nil
			}
		case AppliedMaybe:
			if in.Deadline == 0 || in.Deadline >= v.start {
				return nil
			}
		default:
			if out.Code == lease.CodeDeadlineExceeded {
				de = op
			}
		}
	}
	return de
}

// checkFinal: invariant 5. The latest acknowledged write on each key (and
// each pinning entity) is reflected in the up-to-date replicas, unless a
// maybe-applied op could have superseded it.
func (c *checker) checkFinal(k lease.Key) {
	if len(c.finals) == 0 {
		return
	}
	var w *Operation
	tie := false
	var maxTok uint64
	pins := map[string]*Operation{}
	pinTie := map[string]bool{}
	for _, op := range c.byKey[k] {
		if op.Applied() != AppliedYes || op.Output.Code != lease.CodeOK || !op.Input.Kind.IsWrite() {
			continue
		}
		if op.Input.Kind == KindPin || op.Input.Kind == KindUnpin {
			e := op.Input.Holder
			switch p := pins[e]; {
			case p == nil || op.Output.Now > p.Output.Now:
				pins[e] = op
				delete(pinTie, e)
			case op.Output.Now == p.Output.Now && op.Input.Kind != p.Input.Kind:
				pinTie[e] = true // order within one entry is unknown
			}
			continue
		}
		switch {
		case w == nil || op.Output.Now > w.Output.Now:
			w, tie = op, false
		case op.Output.Now == w.Output.Now:
			tie = true
		}
	}
	// Tokens known to exist before the last write. An answer at the same
	// replicated time may come from the same entry, after it (a read at
	// that time sees the whole entry applied), so only w's own counts.
	if w != nil {
		maxTok = w.Output.Token
	}
	for _, op := range c.byKey[k] {
		if w != nil && op.Applied() == AppliedYes && op.Output.Now < w.Output.Now {
			maxTok = max(maxTok, op.Output.Token)
		}
	}
	for _, f := range c.finals {
		fl, held := f.leases[k]
		if w != nil && !tie {
			c.checkFinalLease(k, f, w, fl, held, maxTok)
		}
		for e, p := range pins {
			if pinTie[e] {
				continue
			}
			has := slices.Contains(f.pins[k], e)
			at := p.Output.Now
			switch {
			case p.Input.Kind == KindPin && !has && c.maybe(k, e, at, math.MaxInt64, KindUnpin) == nil:
				c.fail(5, k, []*Operation{p}, "replica %s lost %s's acknowledged pin", f.id, e)
			case p.Input.Kind == KindUnpin && has && c.maybe(k, e, at, math.MaxInt64, KindPin) == nil:
				c.fail(5, k, []*Operation{p}, "replica %s still has %s's pin after its acknowledged unpin", f.id, e)
			}
		}
	}
}

func (c *checker) checkFinalLease(k lease.Key, f *final, w *Operation, fl lease.Info, held bool, maxTok uint64) {
	o := &w.Output
	h := w.Input.Holder
	desc := fmt.Sprintf("replica %s at replicated %v holds ", f.id, f.now)
	if held {
		desc += fmt.Sprintf("%s token %d [%v, %v]", fl.Holder, fl.Token, fl.Start, fl.Expiry)
	} else {
		desc += "nothing"
	}
	switch o.Outcome {
	case lease.OutcomeGranted, lease.OutcomeExtended:
		revokable := c.maybe(k, h, o.Now, math.MaxInt64, KindRevoke) != nil
		switch {
		case !held && o.Expiry >= f.now && !revokable:
			c.fail(5, k, []*Operation{w}, "acknowledged lease lost: %s", desc)
		case held && fl.Token == o.Token && fl.Expiry < o.Expiry:
			c.fail(5, k, []*Operation{w}, "acknowledged extension lost: %s", desc)
		case held && fl.Token != o.Token && (fl.Token < o.Token || (o.Expiry >= fl.Start && !revokable)):
			c.fail(5, k, []*Operation{w}, "acknowledged lease replaced while live: %s", desc)
		}
	case lease.OutcomeRevoked, lease.OutcomeAbsent:
		if held && fl.Token <= maxTok {
			c.fail(5, k, []*Operation{w}, "acknowledged revoke lost: %s", desc)
		}
	}
}
