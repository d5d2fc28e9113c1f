package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// The limits in force come from the log alone: the built-in defaults, then
// each accepted settings entry; a restored replica takes the snapshot's.
func TestLimitsComeFromTheLogOnly(t *testing.T) {
	h := newHarness(t)
	if h.m.Limits() != lease.DefaultLimits || h.m.SettingsVersion() != 0 {
		t.Fatalf("new machine: %v version %d", h.m.Limits(), h.m.SettingsVersion())
	}
	long := lease.Limits{MinDuration: sec, MaxDuration: 10 * min}
	if r := h.settings(0, long); r.Code != lease.CodeOK {
		t.Fatalf("settings change: %+v", r)
	}
	if r := h.one(sec, claim(kA, "u", 7*min)); r.Outcome != lease.OutcomeGranted {
		t.Fatalf("7m claim under a 10m max: %+v", r)
	}
	// A legacy settings entry with a payload that is not limits is kept, and
	// the limits stay; a replica restored from a snapshot agrees.
	h.entry(logentry.Entry{Kind: logentry.KindSettings, Time: 2 * sec, Payload: []byte{42}})
	if h.m.Limits() != long || h.m.SettingsVersion() != 2 {
		t.Fatalf("after a bad legacy entry: %v version %d", h.m.Limits(), h.m.SettingsVersion())
	}
	r := New()
	if err := r.Restore(h.m.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	if r.Limits() != long || r.SettingsVersion() != 2 || !bytes.Equal(r.Settings(), []byte{42}) {
		t.Fatalf("restored: %v version %d settings %v", r.Limits(), r.SettingsVersion(), r.Settings())
	}
	// A version-2 snapshot (no limits recorded) takes the payload's limits
	// when valid, else the defaults; never the restoring machine's own.
	h.settings(2, long)
	for _, tc := range []struct {
		m    *Machine
		want lease.Limits
	}{{h.m, long}, {New(), lease.DefaultLimits}} {
		old := tc.m.appendSnapshot(nil, 2)
		r := New()
		r.limits = lease.Limits{MinDuration: 2 * sec, MaxDuration: 3 * sec}
		if err := r.Restore(old); err != nil || r.Limits() != tc.want {
			t.Fatalf("version 2 restore: %v %v, want %v", r.Limits(), err, tc.want)
		}
	}
}

func TestSettingsChangeIsCompareAndSet(t *testing.T) {
	h := newHarness(t)
	a := lease.Limits{MinDuration: sec, MaxDuration: 2 * min}
	b := lease.Limits{MinDuration: sec, MaxDuration: 3 * min}
	// Two admins read version 0 and change it; the second is refused.
	if r := h.settings(0, a); r.Code != lease.CodeOK {
		t.Fatalf("first change: %+v", r)
	}
	r := h.settings(0, b)
	if r.Code != lease.CodeInvalidArgument || r.Field != "settings_version" {
		t.Fatalf("stale change: %+v", r)
	}
	if h.m.Limits() != a || h.m.SettingsVersion() != 1 {
		t.Fatalf("the stale change took effect: %v version %d", h.m.Limits(), h.m.SettingsVersion())
	}
	// Based on the current version it applies.
	if r := h.settings(1, b); r.Code != lease.CodeOK || h.m.Limits() != b || h.m.SettingsVersion() != 2 {
		t.Fatalf("change from the current version: %+v %v", r, h.m.Limits())
	}
	// Invalid limits are refused by the lease rule and change nothing.
	for _, bad := range []lease.Limits{{MinDuration: 0, MaxDuration: min}, {MinDuration: min, MaxDuration: sec}, {MinDuration: sec, MaxDuration: 25 * time.Hour}} {
		if r := h.settings(2, bad); r.Code != lease.CodeInvalidArgument || h.m.SettingsVersion() != 2 || h.m.Limits() != b {
			t.Fatalf("invalid limits %v: %+v", bad, r)
		}
	}
	res := h.entry(logentry.Entry{Kind: logentry.KindSettingsChange, Time: h.m.Now(), SettingsVersion: 2, Payload: []byte{9, 9}})
	if res[0].Code != lease.CodeInvalidArgument || h.m.SettingsVersion() != 2 {
		t.Fatalf("undecodable payload: %+v", res[0])
	}
}

// Shrinking max_duration must not strand a holder: its renewals at the old
// duration are clamped to the new maximum and succeed, and the result's
// Start and Expiry say what was applied. New grants above it are refused.
func TestRenewalAboveMaxIsClamped(t *testing.T) {
	h := newHarness(t)
	if r := h.one(0, claim(kA, "u", 5*min)); r.Outcome != lease.OutcomeGranted {
		t.Fatal(r)
	}
	h.settings(0, lease.Limits{MinDuration: sec, MaxDuration: min})
	// Early on, the clamped renewal would shorten the lease: nothing changes.
	r := h.one(10*sec, extend(kA, "u", 5*min))
	if r.Code != lease.CodeOK || r.Outcome != lease.OutcomeExtended || r.Expiry != 5*min {
		t.Fatalf("extend above the new max: %+v", r)
	}
	// Near the expiry the clamped renewal lengthens it to now+max.
	r = h.one(4*min+30*sec, extend(kA, "u", 5*min))
	if r.Code != lease.CodeOK || r.Start != 4*min+30*sec || r.Expiry != 5*min+30*sec {
		t.Fatalf("extend near expiry: %+v", r)
	}
	// A re-claim by the holder is a renewal too.
	r = h.one(5*min+20*sec, claim(kA, "u", 5*min))
	if r.Code != lease.CodeOK || r.Outcome != lease.OutcomeExtended || r.Expiry-r.Start != min {
		t.Fatalf("re-claim above the new max: %+v", r)
	}
	// A new grant, or another holder's claim, above the max is refused.
	for _, c := range []lease.Command{claim(kB, "u", 5*min), claim(kA, "v", 5*min), qclaim(kA, "v", 5*min, 10*sec)} {
		if r := h.one(5*min+20*sec, c); r.Code != lease.CodeInvalidArgument || r.Field != "duration" {
			t.Fatalf("%v %v above the max: %+v", c.Op, c.Key, r)
		}
	}
}

// A queued claimant is granted, at its turn, a duration within the limits
// in force then: clamped, deterministically, never refused.
func TestQueuedGrantUsesTheLimitsOfItsTurn(t *testing.T) {
	h := newHarness(t)
	h.one(0, claim(kA, "a", 10*sec))
	h.one(0, claim(kB, "a", 10*sec))
	if r := h.one(sec, qclaim(kA, "long", 5*min, time.Minute)); r.Outcome != lease.OutcomeQueued {
		t.Fatal(r)
	}
	if r := h.one(sec, qclaim(kB, "short", 2*sec, time.Minute)); r.Outcome != lease.OutcomeQueued {
		t.Fatal(r)
	}
	h.settings(0, lease.Limits{MinDuration: 5 * sec, MaxDuration: min})
	h.one(2*sec, revoke(kA, "a"))
	h.one(2*sec, revoke(kB, "a"))
	if info := h.mustHold(kA, "long"); info.Expiry-info.Start != min {
		t.Fatalf("queued 5m claim granted for %v under a 1m max", info.Expiry-info.Start)
	}
	if info := h.mustHold(kB, "short"); info.Expiry-info.Start != 5*sec {
		t.Fatalf("queued 2s claim granted for %v under a 5s min", info.Expiry-info.Start)
	}
	// A refresh of a queued place is a renewal: not refused when the
	// limits changed since the claimant queued.
	h.one(3*sec, qclaim(kA, "next", 30*sec, time.Minute))
	h.settings(1, lease.Limits{MinDuration: sec, MaxDuration: 20 * sec})
	if r := h.one(4*sec, qclaim(kA, "next", 30*sec, time.Minute)); r.Outcome != lease.OutcomeQueued {
		t.Fatalf("refresh after the max shrank: %+v", r)
	}
}
