package linearize

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// Replica is one server's final state. Give Snapshot (fsm snapshot bytes,
// decoded here) or Leases/Pins/Now directly.
type Replica struct {
	ID       string
	Index    uint64
	Snapshot []byte
	Now      time.Duration
	Leases   []lease.Info
	Pins     map[lease.Key][]string
}

// Options tune Check.
type Options struct {
	// Timeout bounds the porcupine search (0: 60 s). A timeout is reported
	// as a violation of invariant 7 with the result Unknown.
	Timeout time.Duration
	// VisualizeDir is where the HTML visualisation of a non-linearizable key
	// is written (default: a new temporary directory).
	VisualizeDir string
	// Limits decode replica snapshots (default lease.DefaultLimits).
	Limits lease.Limits
}

// Violation is one broken invariant.
type Violation struct {
	Invariant int // 1..7, as numbered in DESIGN.md
	Key       lease.Key
	Message   string
	Ops       []*Operation
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invariant %d (%s) on %s: %s", v.Invariant, invariantNames[v.Invariant], v.Key, v.Message)
	for _, op := range v.Ops {
		fmt.Fprintf(&b, "\n    %s", op)
	}
	return b.String()
}

var invariantNames = [...]string{"", "one holder", "fencing tokens increase", "no early expiry",
	"deadlines", "no lost writes", "no silent drops", "linearizable"}

// Report is the outcome of Check.
type Report struct {
	// Ops counts the operations in the history by kind and Applied class.
	Ops map[Kind]int
	// Definite, Maybe and NotApplied count ops by class; Linearized is how
	// many ops the porcupine check covered (definite + maybe-applied,
	// excluding stale reads).
	Definite, Maybe, NotApplied, Linearized int
	Keys                                    int
	Linearizable                            porcupine.CheckResult
	Violations                              []Violation
	// Visualizations are the HTML files written for non-linearizable keys.
	Visualizations []string
	Elapsed        time.Duration
}

// OK reports whether no invariant was violated.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Has reports whether some violation is of invariant n.
func (r *Report) Has(n int) bool {
	for _, v := range r.Violations {
		if v.Invariant == n {
			return true
		}
	}
	return false
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checked %d ops on %d keys in %v (%d definite, %d maybe applied, %d not applied; %d linearized):",
		r.Definite+r.Maybe+r.NotApplied, r.Keys, r.Elapsed.Round(time.Millisecond), r.Definite, r.Maybe, r.NotApplied, r.Linearized)
	for k := KindClaim; k < numKinds; k++ {
		fmt.Fprintf(&b, " %s=%d", k, r.Ops[k])
	}
	fmt.Fprintf(&b, "; linearizable: %v", r.Linearizable)
	if r.OK() {
		return b.String() + "; no violations"
	}
	fmt.Fprintf(&b, "; %d violations:", len(r.Violations))
	for _, v := range r.Violations {
		b.WriteString("\n  " + v.String())
	}
	for _, p := range r.Visualizations {
		fmt.Fprintf(&b, "\n  visualization: %s", p)
	}
	return b.String()
}

// Check checks a history and the replicas' final states against invariants
// 1-7 of DESIGN.md.
func Check(history []Operation, replicas []Replica, opts Options) *Report {
	began := time.Now()
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Limits == (lease.Limits{}) {
		opts.Limits = lease.DefaultLimits
	}
	rep := &Report{Ops: map[Kind]int{}}
	keys := map[lease.Key]bool{}
	ops := make([]*Operation, len(history))
	for i := range history {
		op := &history[i]
		ops[i] = op
		keys[op.Input.Key] = true
		rep.Ops[op.Input.Kind]++
		switch op.Applied() {
		case AppliedYes:
			rep.Definite++
		case AppliedMaybe:
			rep.Maybe++
		default:
			rep.NotApplied++
		}
	}
	rep.Keys = len(keys)
	finals, errs := decodeReplicas(replicas, opts.Limits)
	rep.Violations = append(rep.Violations, errs...)
	c := newChecker(ops, finals)
	c.run()
	rep.Violations = append(rep.Violations, c.violations...)
	checkLinearizable(rep, ops, opts)
	rep.Elapsed = time.Since(began)
	return rep
}

// final is one replica's decoded state.
type final struct {
	id     string
	index  uint64
	now    time.Duration
	snap   []byte
	leases map[lease.Key]lease.Info
	pins   map[lease.Key][]string
}

func decodeReplicas(replicas []Replica, limits lease.Limits) ([]*final, []Violation) {
	var out []*final
	var bad []Violation
	for _, r := range replicas {
		f := &final{id: r.ID, index: r.Index, now: r.Now, snap: r.Snapshot, pins: r.Pins, leases: map[lease.Key]lease.Info{}}
		infos := r.Leases
		if r.Snapshot != nil {
			m := fsm.New()
			if err := m.Restore(r.Snapshot); err != nil {
				bad = append(bad, Violation{Invariant: 5, Message: fmt.Sprintf("replica %s: %v", r.ID, err)})
				continue
			}
			f.index, f.now, f.pins = m.Index(), m.Now(), m.Pinned()
			infos = m.List("", "", lease.Key{}, 0, 0)
		}
		for _, in := range infos {
			f.leases[in.Key] = in
		}
		if f.pins == nil {
			f.pins = map[lease.Key][]string{}
		}
		out = append(out, f)
	}
	// Replicas at the same applied index must have the same state.
	for i, a := range out {
		for _, b := range out[i+1:] {
			if a.index != b.index {
				continue
			}
			if msg := diffFinals(a, b); msg != "" {
				bad = append(bad, Violation{Invariant: 5, Message: fmt.Sprintf(
					"replicas %s and %s differ at applied index %d: %s", a.id, b.id, a.index, msg)})
			}
		}
	}
	return out, bad
}

func diffFinals(a, b *final) string {
	if a.snap != nil && b.snap != nil {
		if !bytes.Equal(a.snap, b.snap) {
			return "snapshot bytes differ" + diffLeases(a, b)
		}
		return ""
	}
	return strings.TrimPrefix(diffLeases(a, b), "; ")
}

func diffLeases(a, b *final) string {
	for k, la := range a.leases {
		if lb, ok := b.leases[k]; !ok || la != lb {
			return fmt.Sprintf("; %s: %+v vs %+v", k, la, lb)
		}
	}
	for k, lb := range b.leases {
		if _, ok := a.leases[k]; !ok {
			return fmt.Sprintf("; %s: absent vs %+v", k, lb)
		}
	}
	if a.now != b.now {
		return fmt.Sprintf("; replicated time %v vs %v", a.now, b.now)
	}
	return ""
}

// checkLinearizable runs porcupine over the definite and maybe-applied ops.
// A maybe-applied op (and one that never returned) gets a return time after
// every other op, so porcupine may place it anywhere after its call; the
// model lets it have no effect or any effect its input allows.
func checkLinearizable(rep *Report, ops []*Operation, opts Options) {
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	bound := deadlineBound(ops)
	var hist []porcupine.Operation
	for _, op := range ops {
		a := op.Applied()
		if a == AppliedNo || (op.Input.Kind == KindGet && (op.Input.Stale || a != AppliedYes)) {
			continue
		}
		ret := op.Return
		if a == AppliedMaybe {
			ret = end + 1
			if op.Input.Deadline != 0 {
				ret = min(ret, bound(op.Input.Deadline))
			}
			if ret < op.Call {
				continue // its deadline had passed before it was called: it cannot apply
			}
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: op, Call: op.Call, Output: op, Return: ret})
	}
	rep.Linearized = len(hist)
	model := Model()
	rep.Linearizable = porcupine.CheckOperationsTimeout(model, hist, opts.Timeout)
	if rep.Linearizable == porcupine.Ok {
		return
	}
	if rep.Linearizable == porcupine.Unknown {
		rep.Violations = append(rep.Violations, Violation{Invariant: 7,
			Message: fmt.Sprintf("porcupine timed out after %v: linearizability unknown", opts.Timeout)})
		return
	}
	// Find the keys that fail, and visualise each.
	dir := opts.VisualizeDir
	for _, part := range partitionByKey(hist) {
		res, info := porcupine.CheckOperationsVerbose(model, part, opts.Timeout)
		if res == porcupine.Ok {
			continue
		}
		key := part[0].Input.(*Operation).Input.Key
		v := Violation{Invariant: 7, Key: key, Message: fmt.Sprintf(
			"history of %d ops is not linearizable (%v); the ops that could not be placed after the longest linearizable prefix:", len(part), res)}
		v.Ops = stuckOps(part, info)
		if dir == "" {
			dir, _ = os.MkdirTemp("", "linearize-")
		}
		if dir != "" {
			name := strings.NewReplacer("/", "_", "\\", "_").Replace(key.String())
			path := filepath.Join(dir, name+".html")
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				rep.Visualizations = append(rep.Visualizations, path)
				v.Message += " (visualization " + path + ")"
			}
		}
		rep.Violations = append(rep.Violations, v)
	}
}

// deadlineBound returns a function giving, for a replicated deadline d, the
// earliest return of a write applied at a replicated time after d (MaxInt64
// if none). The log's replicated time never goes backwards, so a
// maybe-applied op with deadline d, if it applied at all, applied before any
// such write: it must linearize before that write returned. This keeps
// maybe-applied ops from staying pending to the end of the history, which
// makes the search exponential in their number.
func deadlineBound(ops []*Operation) func(d time.Duration) int64 {
	var ws []*Operation
	for _, op := range ops {
		if op.Applied() == AppliedYes && op.Input.Kind.IsWrite() {
			ws = append(ws, op)
		}
	}
	slices.SortFunc(ws, func(a, b *Operation) int { return cmp.Compare(a.Output.Now, b.Output.Now) })
	suffix := make([]int64, len(ws)+1)
	suffix[len(ws)] = math.MaxInt64
	for i := len(ws) - 1; i >= 0; i-- {
		suffix[i] = min(suffix[i+1], ws[i].Return)
	}
	return func(d time.Duration) int64 {
		i, _ := slices.BinarySearchFunc(ws, d, func(op *Operation, d time.Duration) int {
			if op.Output.Now <= d {
				return -1
			}
			return 1
		})
		return suffix[i]
	}
}

// stuckOps returns the ops not in the longest partial linearization whose
// calls come first: where the history stops making sense.
func stuckOps(part []porcupine.Operation, info porcupine.LinearizationInfo) []*Operation {
	in := map[*Operation]bool{}
	for _, parts := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, p := range parts {
			if len(p) > len(longest) {
				longest = p
			}
		}
		for _, o := range longest {
			in[o.Input.(*Operation)] = true
		}
	}
	var out []*Operation
	for _, o := range part {
		op := o.Input.(*Operation)
		if !in[op] && op.Applied() == AppliedYes {
			out = append(out, op)
		}
	}
	slices.SortFunc(out, func(a, b *Operation) int { return cmp.Compare(a.Call, b.Call) })
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}
