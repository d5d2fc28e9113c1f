package blackbox

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The checks themselves, on planted histories: each breach must be found, and
// a clean history must pass.

type fakeCalls struct{ t0 time.Time }

// at makes a finished call from ms offsets: started at start, answered (line
// read) and exited at end.
func (f fakeCalls) at(start, end int, exit int, stdout string) *call {
	ms := func(n int) time.Time { return f.t0.Add(time.Duration(n) * time.Millisecond) }
	return &call{args: []string{"fake"}, start: ms(start), lineAt: ms(end), end: ms(end), exit: exit, stdout: stdout}
}

func grantJSON(key, holder, result string, token uint64, leftMs int) string {
	return fmt.Sprintf(`{"key":%q,"holder":%q,"result":%q,"token":%d,"expires_in_ms":%d}`, key, holder, result, token, leftMs)
}

func kinds(h *history) string {
	var out []string
	for _, v := range h.violations {
		out = append(out, v.kind)
	}
	return strings.Join(out, ",")
}

func record(h *history, op, key, holder string, c *call, wait bool) {
	code, ok := h.exit(op, c)
	if ok {
		h.write(op, key, holder, c, code, wait)
	}
}

func TestCheckerFindsPlantedBreaches(t *testing.T) {
	f := fakeCalls{t0: time.Now()}
	const k = "a/b/k"
	cases := []struct {
		name string
		plan func(h *history)
		want string // violation kinds, in order
	}{
		{"clean: grant, revoke, grant to another", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			record(h, "revoke", k, "a", f.at(1000, 1050, 0, `{"key":"a/b/k","holder":"a","result":"revoked"}`), false)
			record(h, "claim", k, "b", f.at(1040, 1100, 0, grantJSON(k, "b", "granted", 2, 2000)), false)
			record(h, "wait", k, "c", f.at(900, 3200, 0, grantJSON(k, "c", "granted", 3, 2000)), true)
		}, ""},
		{"overlap: a second holder granted within the first's time", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			record(h, "claim", k, "b", f.at(1500, 1550, 0, grantJSON(k, "b", "granted", 2, 2000)), false)
		}, "overlap"},
		{"overlap through a wait --claim grant", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			record(h, "wait", k, "w", f.at(10, 1500, 0, grantJSON(k, "w", "granted", 2, 3000)), true)
		}, "overlap"},
		{"an unapplied revoke leaves the belief", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			record(h, "revoke", k, "a", f.at(500, 600, 7, `{"error":{"code":"deadline_exceeded"}}`), false)
			record(h, "claim", k, "b", f.at(1000, 1100, 0, grantJSON(k, "b", "granted", 2, 2000)), false)
		}, "overlap"},
		{"early loss: not held while believed", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			record(h, "extend", k, "a", f.at(500, 600, 4, `{"error":{"code":"not_held"}}`), false)
		}, "early loss"},
		{"read: a linearizable get says absent while a holder keeps the lease", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			h.read(k, f.at(500, 600, 0, `{"key":"a/b/k","found":true,"holder":"a","token":1}`))
			h.read(k, f.at(700, 800, 0, `{"key":"a/b/k","found":false}`))
		}, "read"},
		{"clean: a read after a revoke that answered later", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			h.read(k, f.at(700, 800, 0, `{"key":"a/b/k","found":false}`))
			h.released(k, f.at(650, 820, 0, `{"key":"a/b/k","released":true,"event":"revoked"}`))
			record(h, "revoke", k, "a", f.at(600, 900, 0, `{"key":"a/b/k","holder":"a","result":"revoked"}`), false)
		}, ""},
		{"read: a plain wait reports a release while a holder keeps the lease", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 1, 2000)), false)
			h.released(k, f.at(100, 900, 0, `{"key":"a/b/k","released":true,"event":"expired"}`))
			h.released(k, f.at(100, 2500, 0, `{"key":"a/b/k","released":true,"event":"expired"}`)) // after its end: fine
		}, "read"},
		{"token order: a later grant with a lower token", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 5, 1000)), false)
			record(h, "claim", k, "b", f.at(2000, 2050, 0, grantJSON(k, "b", "granted", 4, 1000)), false)
		}, "token order"},
		{"one token, two holders", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 0, grantJSON(k, "a", "granted", 5, 1000)), false)
			record(h, "claim", k, "b", f.at(2000, 2050, 0, grantJSON(k, "b", "extended", 5, 1000)), false)
		}, "token owner"},
		{"exit code that does not match the JSON code", func(h *history) {
			record(h, "claim", k, "a", f.at(0, 50, 5, `{"error":{"code":"denied"}}`), false)
			record(h, "claim", k, "a", f.at(0, 50, 3, `not json`), false)
			record(h, "claim", k, "a", f.at(0, 50, 9, `{"error":{"code":"unknown"}}`), false)
		}, "exit code,exit code,exit code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory()
			tc.plan(h)
			h.checkTenures()
			if got := kinds(h); got != tc.want {
				t.Errorf("violations %q, want %q: %v", got, tc.want, h.violations)
			}
		})
	}
}

func TestCheckerComparesReplicasAtEqualIndex(t *testing.T) {
	h := newHistory()
	l := func(idx uint64, holders ...string) *listOut {
		out := &listOut{AppliedIndex: idx}
		for i, hd := range holders {
			out.Leases = append(out.Leases, leaseOut{Key: fmt.Sprintf("a/b/k%d", i), Holder: hd, Token: uint64(i + 1)})
		}
		return out
	}
	h.replica("1", l(20, "x", "y"))
	h.replica("2", l(21, "x")) // another index: not compared
	h.replica("3", l(20, "x", "y"))
	if len(h.violations) != 0 || h.comparisons["1-3"] != 1 || len(h.comparisons) != 1 {
		t.Fatalf("violations %v, comparisons %v", h.violations, h.comparisons)
	}
	h.replica("2", l(20, "x")) // issue 12's different-flags divergence
	if got := kinds(h); got != "replicas diverge,replicas diverge" {
		t.Fatalf("violations %q, want two divergences", got)
	}
}

// A tenure no answer reported is fine after an unknown outcome, a breach
// after "not applied" answers only (a wait --claim that exited 7 and was
// granted later).
func TestCheckerFindsUntoldTenures(t *testing.T) {
	f := fakeCalls{t0: time.Now()}
	h := newHistory()
	record(h, "wait", "a/b/k0", "w", f.at(0, 8000, 7, `{"error":{"code":"deadline_exceeded"}}`), true)
	record(h, "wait", "a/b/k1", "w", f.at(0, 8000, 1, `{"error":{"code":"unknown"}}`), true)
	h.replica("1", &listOut{AppliedIndex: 5, Leases: []leaseOut{{Key: "a/b/k0", Holder: "w", Token: 1}, {Key: "a/b/k1", Holder: "w", Token: 2}}})
	h.checkTenures()
	if got := kinds(h); got != "untold tenure" {
		t.Fatalf("violations %q (%v), want one untold tenure", got, h.violations)
	}
}
