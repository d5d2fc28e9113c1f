package admission

import (
	"context"
	"testing"

	"github.com/leasehold/leasehold/lease"
)

// A single-command call is the common unary case; its allocations are paid
// on every claim and renewal. This counts the whole round (caller, queue,
// dispatcher and the fake proposer's entry), so the bound has headroom
// only for the proposer and the dispatcher.
func TestSingleCommandSubmitAllocs(t *testing.T) {
	h := newHarness(t, nil)
	h.p.auto = true
	cmds := []lease.Command{cmd(lease.OpExtend, "a")}
	ctx := context.Background()
	n := testing.AllocsPerRun(200, func() {
		if _, err := h.q.Submit(ctx, cmds); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocations per single-command Submit", n)
	if n > maxSubmitAllocs {
		t.Fatalf("%.1f allocations per single-command Submit, want at most %d", n, maxSubmitAllocs)
	}
}

// 17 before the single-command request kept its slices inline and wait
// stopped allocating closures; 13 after (of which the fake proposer's
// entry, its channel and results are 3, the timer 2-3).
const maxSubmitAllocs = 14
