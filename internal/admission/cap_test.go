package admission

import (
	"errors"
	"fmt"
	"testing"

	"github.com/leasehold/leasehold/lease"
)

// A claim flood up to the hard cap must not lock renewals out: with the
// default settings (where the drain-time check admits a cap's worth of
// claims while commit latency is low), an extend arriving after the flood
// is admitted (issue 17 #5).
func TestClaimFloodCannotFillTheCapForRenewals(t *testing.T) {
	c := newCore(t, nil)
	hard := c.Settings().MaxQueuedOps
	admitted, full := 0, 0
	for call := 0; call*1000 < hard; call++ {
		var items []*Item
		for i := range min(1000, hard-call*1000) {
			items = append(items, item(lease.OpClaim, fmt.Sprint("c", call, "-", i)))
		}
		errs := c.Admit(t0, items...)
		for _, e := range errs {
			if e != nil && !errors.Is(e, errQueueFull) {
				t.Fatalf("claim refused by %v, not by the cap", e)
			}
		}
		if errs == nil {
			admitted += len(items)
		} else {
			full += len(items)
		}
	}
	ext := item(lease.OpExtend, "renew")
	if errs := c.Admit(t0, ext); errs != nil {
		t.Fatalf("extend after a claim flood of %d: %v", admitted, errs[0])
	}
	if admitted == 0 || full == 0 {
		t.Fatalf("%d claims admitted, %d refused by the cap: want both", admitted, full)
	}
	// Renewals may still fill the whole cap, and no more.
	var rs []*Item
	for i := range hard - c.Len() {
		rs = append(rs, item(lease.OpExtend, fmt.Sprint("r", i)))
	}
	mustAdmit(t, c, t0, rs...)
	if errs := c.Admit(t0, item(lease.OpRevoke, "over")); errs == nil || !errors.Is(errs[0], errQueueFull) {
		t.Fatalf("renewal past the cap: %v", errs)
	}
}

// A call's ops are refused by the cap lane by lane: a Bulk holding extends
// and claims keeps its extends when the claims no longer fit.
func TestCapRefusesAMixedCallsClaimsOnly(t *testing.T) {
	c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = 10; s.MaxQueuedOps = 40 })
	var flood []*Item
	for i := range 30 { // the claims' part of the cap is 40 - 40/2 = 20
		flood = append(flood, item(lease.OpClaim, fmt.Sprint("f", i)))
	}
	if errs := c.Admit(t0, flood[:20]...); errs != nil {
		t.Fatalf("claims within their share: %v", errs)
	}
	if errs := c.Admit(t0, flood[20:]...); errs == nil {
		t.Fatal("claims past their share admitted")
	}
	mixed := []*Item{item(lease.OpClaim, "k"), item(lease.OpExtend, "e")}
	errs := c.Admit(t0, mixed...)
	if errs == nil || !errors.Is(errs[0], errQueueFull) || errs[1] != nil {
		t.Fatalf("mixed call: %v, want the claim refused by the cap and the extend admitted", errs)
	}
}
