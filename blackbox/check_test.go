package blackbox

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// belief is a time during which a holder may act as the lease's holder:
// from when it read the answer to when the answer's time left runs out,
// counted from the call's start (a claim or extend) or from the answer's
// arrival (wait --claim, whose time left counts from its return). A real
// tenure contains every belief its answers allow, so two holders' beliefs
// must never overlap.
type belief struct {
	holder   string
	token    uint64
	from, to time.Time
	call     *call
}

// grant is a successful write answer with its token.
type grant struct {
	holder string
	token  uint64
	fresh  bool // result "granted": a new tenure was made during the call
	call   *call
}

// history records what the CLI answered and checks it.
type history struct {
	mu         sync.Mutex
	t0         time.Time
	beliefs    map[string][]*belief // by key
	reads      []readCall
	grants     map[string][]grant // by key
	violations []violation
	exits      map[string]map[int]int // command -> exit code -> count
	errCodes   map[string]int         // JSON error code -> count
	// replicas: server ID -> applied index -> lease set digest
	replicas    map[string]map[uint64]string
	comparisons map[string]int // "1-2" -> lease sets compared at equal index
	lists       int
	held        map[string]bool   // "key holder token" seen in any replica's list
	examples    map[string]string // "command exit code" -> its first call, for the report
	calls       []*call           // every call, for a trace (LEASEHOLD_BLACKBOX_TRACE)
	uncertain   map[string]bool   // "key holder" -> some write's outcome was unknown
}

func newHistory() *history {
	return &history{t0: time.Now(), beliefs: map[string][]*belief{}, grants: map[string][]grant{},
		exits: map[string]map[int]int{}, errCodes: map[string]int{},
		replicas: map[string]map[uint64]string{}, comparisons: map[string]int{},
		held: map[string]bool{}, examples: map[string]string{}, uncertain: map[string]bool{}}
}

func (h *history) at(t time.Time) string { return fmt.Sprintf("t+%.3fs", t.Sub(h.t0).Seconds()) }

// violation is one breach found; kind groups them for the report.
type violation struct{ kind, text string }

func (h *history) violatef(kind, format string, args ...any) {
	h.violations = append(h.violations, violation{kind, fmt.Sprintf(format, args...)})
}

// report lists up to perKind violations of each kind, with counts.
func (h *history) report(perKind int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	count := map[string]int{}
	var out []string
	for _, v := range h.violations {
		if count[v.kind]++; count[v.kind] <= perKind {
			out = append(out, v.kind+": "+v.text)
		}
	}
	kinds := make([]string, 0, len(count))
	for k := range count {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		out = append(out, fmt.Sprintf("%d %s violations", count[k], k))
	}
	return out
}

// exit counts c's exit code and checks it against its JSON; it returns the
// error code ("" on success) and whether the output was usable.
func (h *history) exit(cmd string, c *call) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.exits[cmd] == nil {
		h.exits[cmd] = map[int]int{}
	}
	h.exits[cmd][c.exit]++
	h.calls = append(h.calls, c)
	if ex := fmt.Sprintf("%s %d", cmd, c.exit); h.examples[ex] == "" {
		h.examples[ex] = c.String()
	}
	code, breach := contractErr(c)
	if code != "" {
		h.errCodes[code]++
	}
	if breach != "" {
		h.violatef("exit code", "%s at %s: %s", breach, h.at(c.start), c)
		return code, false
	}
	return code, true
}

// covered reports whether holder's beliefs on key cover [from, to].
func (h *history) covered(key, holder string, from, to time.Time) *belief {
	for _, b := range h.beliefs[key] {
		if b.holder == holder && !b.from.After(from) && b.to.After(to) {
			return b
		}
	}
	return nil
}

// write records a claim, extend or revoke by holder on key (exit already
// checked; code is its JSON error code). waitGrant: the answer of wait --claim.
func (h *history) write(op, key, holder string, c *call, code string, waitGrant bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch code {
	case "":
		var w writeOut
		if err := json.Unmarshal([]byte(c.stdout), &w); err != nil {
			h.violatef("output", "bad JSON from %s: %v", c, err)
			return
		}
		if op == "revoke" {
			h.release(key, holder, c.start)
			return
		}
		if w.Result != "granted" && w.Result != "extended" {
			h.violatef("output", "%s answered result %q: %s", op, w.Result, c)
			return
		}
		if w.Key != key || w.Holder != holder {
			h.violatef("output", "%s answered for %s/%s: %s", op, w.Key, w.Holder, c)
		}
		from, to := c.lineAt, c.start.Add(time.Duration(w.ExpiresInMs)*time.Millisecond)
		if waitGrant {
			to = c.lineAt.Add(time.Duration(w.ExpiresInMs) * time.Millisecond)
		}
		if to.After(from) {
			h.beliefs[key] = append(h.beliefs[key], &belief{holder: holder, token: w.Token, from: from, to: to, call: c})
		}
		h.grants[key] = append(h.grants[key], grant{holder: holder, token: w.Token, fresh: w.Result == "granted", call: c})
	case "unknown", "canceled":
		h.uncertain[key+" "+holder] = true
		if op == "revoke" {
			h.release(key, holder, c.start) // it may have applied
		}
	case "not_held", "denied":
		// The holder believed it held the lease through the whole call: the
		// lease was lost before its time.
		if b := h.covered(key, holder, c.start, c.end); b != nil {
			h.violatef("early loss", "%s on %s by %s answered %s at %s-%s, but %s believed it held token %d until %s (from %s)",
				op, key, holder, code, h.at(c.start), h.at(c.end), holder, b.token, h.at(b.to), b.call)
		}
	}
}

// read records a linearizable get of key (exit 0), checked at the end.
func (h *history) read(key string, c *call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var g getOut
	if err := json.Unmarshal([]byte(c.stdout), &g); err != nil {
		h.violatef("output", "bad get JSON: %v: %s", err, c)
		return
	}
	h.reads = append(h.reads, readCall{key: key, c: c, get: &g})
}

// released records a plain wait's answer (exit 0), checked at the end.
func (h *history) released(key string, c *call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads = append(h.reads, readCall{key: key, c: c})
}

// readCall is a get, or (get nil) a plain wait that answered "released".
type readCall struct {
	key string
	c   *call
	get *getOut
}

// checkReads checks reads against the beliefs once every revoke has ended
// them (another holder's revoke may answer after a read that followed it).
// A holder whose belief covers the whole call must be the one a get reports
// (issue 12, hole 5: a read said "absent" while its holder kept the lease),
// and a plain wait must not report a release.
func (h *history) checkReads() {
	for _, r := range h.reads {
		c := r.c
		for _, b := range h.beliefs[r.key] {
			if b.from.After(c.start) || !b.to.After(c.end) {
				continue
			}
			switch g := r.get; {
			case g == nil:
				h.violatef("read", "wait %s answered released at %s-%s while %s believed it held token %d until %s\n    %s\n    %s",
					r.key, h.at(c.start), h.at(c.end), b.holder, b.token, h.at(b.to), b.call, c)
			case !g.Found || g.Holder != b.holder || g.Token != b.token:
				h.violatef("read", "get %s at %s-%s answered found=%v holder=%q token=%d while %s believed it held token %d until %s\n    %s\n    %s",
					r.key, h.at(c.start), h.at(c.end), g.Found, g.Holder, g.Token, b.holder, b.token, h.at(b.to), b.call, c)
			}
		}
	}
}

// release ends holder's beliefs on key at t (it started revoking).
func (h *history) release(key, holder string, t time.Time) {
	for _, b := range h.beliefs[key] {
		if b.holder == holder && b.to.After(t) {
			b.to = t
		}
	}
}

// checkTenures checks beliefs, reads and tokens once the run is over.
func (h *history) checkTenures() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkReads()
	for key, bs := range h.beliefs {
		sort.Slice(bs, func(i, j int) bool { return bs[i].from.Before(bs[j].from) })
		for i, a := range bs {
			for _, b := range bs[i+1:] {
				if !b.from.Before(a.to) {
					break // sorted by start: no later belief overlaps a
				}
				if a.holder != b.holder && a.to.After(a.from) && b.to.After(b.from) {
					h.violatef("overlap", "on %s: %s (token %d) believed %s-%s and %s (token %d) believed %s-%s\n    %s\n    %s",
						key, a.holder, a.token, h.at(a.from), h.at(a.to), b.holder, b.token, h.at(b.from), h.at(b.to), a.call, b.call)
				}
			}
		}
	}
	// A tenure a replica held that no answer reported must come from a
	// write whose outcome was unknown: answers 5, 6 and 7 say "not applied".
	for _, k := range h.untold() {
		f := strings.Fields(k)
		if !h.uncertain[f[0]+" "+f[1]] {
			h.violatef("untold tenure", "replicas held %s (key holder token), but every write of %s on %s was answered, and none reported it", k, f[1], f[0])
		}
	}
	for key, gs := range h.grants {
		owner := map[uint64]string{}
		for _, g := range gs {
			if o, ok := owner[g.token]; ok && o != g.holder {
				h.violatef("token owner", "token %d on %s answered to %s and to %s: %s", g.token, key, o, g.holder, g.call)
			}
			owner[g.token] = g.holder
		}
		for _, y := range gs {
			if !y.fresh {
				continue
			}
			for _, x := range gs {
				if x.call.end.Before(y.call.start) && x.token >= y.token && !(x.token == y.token && x.holder == y.holder) {
					h.violatef("token order", "on %s: %s got token %d by %s, then %s was granted token %d by a later call %s",
						key, x.holder, x.token, h.at(x.call.end), y.holder, y.token, y.call)
				}
			}
		}
	}
}

// digest is a replica's lease set in a canonical form.
func digest(ls []leaseOut) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s holder=%s token=%d start=%d expiry=%d left=%dms pinned=%v",
			l.Key, l.Holder, l.Token, l.StartNs, l.ExpiryNs, l.ExpiresInMs, l.Pinned))
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n")
}

// replica records a stale list from server id and compares it with every
// other replica's list at the same applied index.
func (h *history) replica(id string, l *listOut) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lists++
	for _, le := range l.Leases {
		h.held[fmt.Sprintf("%s %s %d", le.Key, le.Holder, le.Token)] = true
	}
	d := digest(l.Leases)
	if h.replicas[id] == nil {
		h.replicas[id] = map[uint64]string{}
	}
	if old, ok := h.replicas[id][l.AppliedIndex]; ok && old != d {
		h.violatef("replica", "server %s: two different lease sets at applied index %d:\n%s\n  vs\n%s", id, l.AppliedIndex, indent(old), indent(d))
	}
	h.replicas[id][l.AppliedIndex] = d
	for other, m := range h.replicas {
		if other == id {
			continue
		}
		od, ok := m[l.AppliedIndex]
		if !ok {
			continue
		}
		pair := min(id, other) + "-" + max(id, other)
		h.comparisons[pair]++
		if od != d {
			h.violatef("replicas diverge", "at applied index %d:\n  server %s:\n%s\n  server %s:\n%s", l.AppliedIndex, id, indent(d), other, indent(od))
		}
	}
}

func indent(s string) string {
	if s == "" {
		return "    (no lease)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func (h *history) pairsCompared() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.comparisons)
}

// untold lists the tenures ("key holder token") a replica held that no
// answer reported to their holder.
func (h *history) untold() []string {
	told := map[string]bool{}
	for key, gs := range h.grants {
		for _, g := range gs {
			told[fmt.Sprintf("%s %s %d", key, g.holder, g.token)] = true
		}
	}
	var out []string
	for k := range h.held {
		if !told[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// trace writes every call, in start order, with its times.
func (h *history) trace(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := slices.Clone(h.calls)
	sort.Slice(cs, func(i, j int) bool { return cs[i].start.Before(cs[j].start) })
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s-%s %s\n", h.at(c.start), h.at(c.end), c)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (h *history) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	cmds := make([]string, 0, len(h.exits))
	for c := range h.exits {
		cmds = append(cmds, c)
	}
	slices.Sort(cmds)
	for _, c := range cmds {
		fmt.Fprintf(&b, "%s exits %v; ", c, h.exits[c])
	}
	nb, ng := 0, 0
	for _, bs := range h.beliefs {
		nb += len(bs)
	}
	for _, gs := range h.grants {
		ng += len(gs)
	}
	untold := h.untold()
	fmt.Fprintf(&b, "error codes %v; %d beliefs, %d grant answers; %d stale lists, compared at equal index %v; %d tenures held that no answer reported %v",
		h.errCodes, nb, ng, h.lists, h.comparisons, len(untold), untold)
	exs := make([]string, 0, len(h.examples))
	for k := range h.examples {
		exs = append(exs, k)
	}
	slices.Sort(exs)
	for _, k := range exs {
		fmt.Fprintf(&b, "\n  first %s: %s", k, h.examples[k])
	}
	return b.String()
}
