package admission

import (
	"fmt"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func cmd(op lease.Op, name string) lease.Command {
	return lease.Command{Op: op, Key: lease.Key{Namespace: "ns", Group: "g", Name: name},
		Holder: "h-" + name, Duration: 30 * time.Second}
}

func item(op lease.Op, name string) *Item { return &Item{Cmd: cmd(op, name)} }

func testSettings(mut func(*Settings)) Settings {
	s := DefaultSettings()
	if mut != nil {
		mut(&s)
	}
	return s
}

func newCore(t *testing.T, mut func(*Settings)) *Core {
	t.Helper()
	c, err := NewCore(testSettings(mut))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAdmit(t *testing.T, c *Core, now time.Time, items ...*Item) {
	t.Helper()
	if errs := c.Admit(now, items...); errs != nil {
		for i, e := range errs {
			if e != nil {
				t.Fatalf("item %d rejected: %v", i, e)
			}
		}
	}
}

func names(items []*Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Cmd.Key.Name
	}
	return out
}

func TestDeadlinePerOpType(t *testing.T) {
	d := DefaultSettings().Deadlines
	for _, tc := range []struct {
		op     lease.Op
		caller time.Duration // 0: no caller deadline
		want   time.Duration
	}{
		{lease.OpClaim, 0, d.Claim},
		{lease.OpExtend, 0, d.Extend},
		{lease.OpRevoke, 0, d.Revoke},
		{lease.OpPin, 0, d.Pin},
		{lease.OpUnpin, 0, d.Unpin},
		{lease.OpClaim, time.Second, time.Second},          // caller's is earlier
		{lease.OpExtend, time.Minute, d.Extend},            // default is earlier
		{lease.OpExtend, 4 * time.Second, 4 * time.Second}, // between
	} {
		t.Run(fmt.Sprintf("%v/%v", tc.op, tc.caller), func(t *testing.T) {
			c := newCore(t, nil)
			it := item(tc.op, "k")
			if tc.caller > 0 {
				it.Deadline = t0.Add(tc.caller)
			}
			mustAdmit(t, c, t0, it)
			if got := it.Deadline.Sub(t0); got != tc.want {
				t.Fatalf("deadline %v, want %v", got, tc.want)
			}
		})
	}
	if d.Extend <= d.Claim {
		t.Fatalf("default extend deadline %v not longer than claim's %v", d.Extend, d.Claim)
	}
}

// Juju's longer extend deadline never took effect; here an extend must
// survive a wait that kills a claim queued at the same moment.
func TestExtendSurvivesWaitThatKillsClaim(t *testing.T) {
	c := newCore(t, nil)
	cl, ex := item(lease.OpClaim, "c"), item(lease.OpExtend, "e")
	mustAdmit(t, c, t0, cl, ex)
	b := c.NextBatch(t0.Add(5 * time.Second))
	if got := names(b.Items); len(got) != 1 || got[0] != "e" {
		t.Fatalf("batch %v, want [e]", got)
	}
	if got := names(b.Dropped); len(got) != 1 || got[0] != "c" {
		t.Fatalf("dropped %v, want [c]", got)
	}
	if cl.state != stateDropped || ex.state != stateProposed || c.Len() != 0 {
		t.Fatalf("states %v %v len %d", cl.state, ex.state, c.Len())
	}
}

func TestDropAtDequeueHonoursMargin(t *testing.T) {
	c := newCore(t, nil)
	it := item(lease.OpClaim, "c")
	it.Deadline = t0.Add(time.Second)
	mustAdmit(t, c, t0, it)
	margin := c.Settings().DeadlineMargin
	if b := c.NextBatch(t0.Add(time.Second - margin - 1)); len(b.Items) != 1 {
		t.Fatalf("op with more than the margin left was not taken: %+v", b)
	}
	it2 := item(lease.OpClaim, "d")
	it2.Deadline = t0.Add(time.Second)
	mustAdmit(t, c, t0, it2)
	if b := c.NextBatch(t0.Add(time.Second - margin)); len(b.Items) != 0 || len(b.Dropped) != 1 {
		t.Fatalf("op within the margin of its deadline was not dropped: %+v", b)
	}
}

func TestPriorityAndClaimShare(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		maxOps                 int
		share                  float64
		renewals, claims       int
		wantRenewal, wantClaim int
	}{
		{"renewals only", 10, 0.2, 30, 0, 10, 0},
		{"claims only", 10, 0.2, 0, 30, 0, 10},
		{"both backlogged: claims get their share", 10, 0.2, 30, 30, 8, 2},
		{"share rounds up", 10, 0.15, 30, 30, 8, 2},
		{"few claims: renewals fill the rest", 10, 0.2, 30, 1, 9, 1},
		{"few renewals: claims fill the rest", 10, 0.2, 3, 30, 3, 7},
		{"tiny entry still serves a claim", 2, 0.1, 30, 30, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = tc.maxOps; s.ClaimShare = tc.share })
			var all []*Item
			// Interleave arrivals so the merge by arrival order is exercised.
			for i := 0; i < max(tc.renewals, tc.claims); i++ {
				if i < tc.claims {
					all = append(all, item(lease.OpClaim, fmt.Sprintf("c%02d", i)))
				}
				if i < tc.renewals {
					all = append(all, item(lease.OpExtend, fmt.Sprintf("r%02d", i)))
				}
			}
			mustAdmit(t, c, t0, all...)
			b := c.NextBatch(t0)
			var nr, nc int
			for i, it := range b.Items {
				if it.lane == LaneRenewal {
					nr++
				} else {
					nc++
				}
				if i > 0 && b.Items[i-1].seq >= it.seq {
					t.Fatalf("batch not in arrival order: %v", names(b.Items))
				}
			}
			if nr != tc.wantRenewal || nc != tc.wantClaim {
				t.Fatalf("renewals %d claims %d, want %d %d (%v)", nr, nc, tc.wantRenewal, tc.wantClaim, names(b.Items))
			}
		})
	}
}

// A claim storm queued first must not delay an extend that arrives after it.
func TestClaimStormDoesNotDelayExtend(t *testing.T) {
	c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = 64 })
	var storm []*Item
	for i := range 5000 {
		storm = append(storm, item(lease.OpClaim, fmt.Sprint("c", i)))
	}
	c.Admit(t0, storm...) // some may be rejected; the point is the backlog
	ex := item(lease.OpExtend, "e")
	mustAdmit(t, c, t0, ex)
	if w := c.expectedWait(LaneRenewal); w > 2*c.est.latency {
		t.Fatalf("extend expected to wait %v behind claims", w)
	}
	b := c.NextBatch(t0)
	if ex.state != stateProposed {
		t.Fatalf("extend not in the first entry after a claim storm: %v", names(b.Items))
	}
	// And claims still get a share.
	if len(b.Items) != 64 {
		t.Fatalf("entry has %d ops, want 64", len(b.Items))
	}
}

// Over many entries under sustained load in both lanes, claims get at
// least their share of throughput and renewals the rest.
func TestSharesOverTime(t *testing.T) {
	c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = 100; s.ClaimShare = 0.2 })
	var served [numLanes]int
	now := t0
	for i := range 50 {
		var in []*Item
		for j := range 150 { // offered load above capacity in both lanes
			in = append(in, item(lease.OpExtend, fmt.Sprint("r", i, "-", j)), item(lease.OpClaim, fmt.Sprint("c", i, "-", j)))
		}
		c.Admit(now, in...)
		for _, it := range c.NextBatch(now).Items {
			served[it.lane]++
		}
		now = now.Add(time.Millisecond)
	}
	if served[LaneClaim] != 50*20 || served[LaneRenewal] != 50*80 {
		t.Fatalf("served %v, want claims 1000 renewals 4000", served)
	}
}

// settle feeds the estimator completions of latency lat.
func settle(c *Core, now time.Time, lat time.Duration) time.Time {
	for range 100 {
		now = now.Add(lat)
		c.Completed(lat)
	}
	return now
}

func TestDrainRateFollowsLittlesLaw(t *testing.T) {
	c := newCore(t, nil) // 3 in flight x 1024 ops
	st := c.Stats()
	if st.Measured || st.CommitLatency != initialLatency {
		t.Fatalf("fresh core: %+v", st)
	}
	settle(c, t0, 8*time.Millisecond)
	st = c.Stats()
	want := 3 * 1024 / 0.008
	if !st.Measured || st.CommitLatency != 8*time.Millisecond || st.DrainRate < want*0.99 || st.DrainRate > want*1.01 {
		t.Fatalf("got %+v, want latency 8ms and rate %v", st, want)
	}
	// A light load does not lower the estimate: only latency counts.
	c.Completed(8 * time.Millisecond)
	if r := c.Stats().DrainRate; r < want*0.99 {
		t.Fatalf("rate fell to %v after a small entry", r)
	}
	// Big ops make the byte bound bind first.
	c2 := newCore(t, func(s *Settings) { s.MaxBytesPerEntry = 64 << 10 })
	settle(c2, t0, 8*time.Millisecond)
	mustAdmit(t, c2, t0, item(lease.OpExtend, fmt.Sprintf("%0250d", 1)))
	perEntry := float64(64<<10) / float64(c2.est.opBytes)
	if r := c2.Stats().DrainRate; r > 3*perEntry/0.008*1.01 || perEntry > 200 {
		t.Fatalf("rate %v ignores the byte bound (%.0f ops/entry)", r, perEntry)
	}
}

func TestOverloadedWhenExpectedWaitExceedsDeadline(t *testing.T) {
	// 1 entry of 10 ops per 10 ms: 1000 ops/s, so a 3 s claim deadline admits ~2970.
	c := newCore(t, func(s *Settings) { s.MaxInFlight = 1; s.MaxOpsPerEntry = 10 })
	now := settle(c, t0, 10*time.Millisecond)
	var claims []*Item
	for i := range 4000 {
		claims = append(claims, item(lease.OpClaim, fmt.Sprint("c", i)))
	}
	errs := c.Admit(now, claims...)
	if errs == nil {
		t.Fatal("4 s of claims at 1000 ops/s all admitted under a 3 s deadline")
	}
	first := -1
	for i, e := range errs {
		if e == nil {
			continue
		}
		if first < 0 {
			first = i
		}
		if e.Code != lease.CodeOverloaded || e.RetryAfter <= 0 {
			t.Fatalf("item %d: %v (retry after %v), want overloaded with retry-after", i, e, e.RetryAfter)
		}
	}
	if first < 2900 || first > 3000 {
		t.Fatalf("first rejection at %d, want ~2970", first)
	}
	if w := c.Stats().EstimatedWait[LaneClaim]; w < 2900*time.Millisecond {
		t.Fatalf("estimated claim wait %v", w)
	}
	// Renewals still get in: the claim backlog is not ahead of them.
	ex := item(lease.OpExtend, "e")
	mustAdmit(t, c, now, ex)
	// A claim with a short caller deadline gets a retry-after near the excess.
	cl := item(lease.OpClaim, "late")
	cl.Deadline = now.Add(time.Second)
	e := c.Admit(now, cl)[0]
	if e == nil || e.Code != lease.CodeOverloaded || e.RetryAfter < time.Second || e.RetryAfter > 3*time.Second {
		t.Fatalf("got %v, want overloaded with retry-after ~2s", e)
	}
	// Once the backlog drains, the same claim is admitted.
	for c.Len() > 0 {
		c.NextBatch(now)
	}
	if e := c.Admit(now, item(lease.OpClaim, "again")); e != nil {
		t.Fatalf("after drain: %v", e[0])
	}
}

func TestAdmitDeadlineTooClose(t *testing.T) {
	c := newCore(t, nil)
	it := item(lease.OpClaim, "c")
	it.Deadline = t0.Add(c.Settings().DeadlineMargin + time.Millisecond)
	if e := c.Admit(t0, it); e == nil || e[0].Code != lease.CodeDeadlineExceeded {
		t.Fatalf("got %v, want deadline exceeded", e)
	}
	if c.Len() != 0 || it.state != stateRejected {
		t.Fatal("rejected op queued")
	}
}

func TestHardCapRejectsWholeCall(t *testing.T) {
	c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = 10; s.MaxQueuedOps = 10 })
	var a, b []*Item
	for i := range 8 {
		a = append(a, item(lease.OpExtend, fmt.Sprint("a", i)))
	}
	for i := range 3 {
		b = append(b, item(lease.OpExtend, fmt.Sprint("b", i)))
	}
	mustAdmit(t, c, t0, a...)
	errs := c.Admit(t0, b...)
	for i, e := range errs {
		if e == nil || e.Code != lease.CodeOverloaded || e.RetryAfter <= 0 {
			t.Fatalf("item %d: %v, want overloaded", i, e)
		}
	}
	if c.Len() != 8 {
		t.Fatalf("len %d, want 8", c.Len())
	}
}

func TestWithdraw(t *testing.T) {
	c := newCore(t, nil)
	var items []*Item
	for i := range 2000 {
		items = append(items, item(lease.OpClaim, fmt.Sprint("c", i)))
	}
	mustAdmit(t, c, t0, items...)
	for i, it := range items {
		if i%2 == 0 && !c.Withdraw(it) {
			t.Fatal("queued item not withdrawn")
		}
	}
	if c.Withdraw(items[0]) {
		t.Fatal("withdrew twice")
	}
	if c.Len() != 1000 {
		t.Fatalf("len %d", c.Len())
	}
	if l := len(c.lanes[LaneClaim].items); l > 1500 {
		t.Fatalf("withdrawn items not compacted: %d slots", l)
	}
	seen := 0
	for c.Len() > 0 {
		for _, it := range c.NextBatch(t0).Items {
			if it.state != stateProposed || it.Cmd.Key.Name[1:] == "" {
				t.Fatal("bad item")
			}
			var n int
			fmt.Sscan(it.Cmd.Key.Name[1:], &n)
			if n%2 == 0 {
				t.Fatalf("withdrawn item %s proposed", it.Cmd.Key.Name)
			}
			seen++
		}
	}
	if seen != 1000 {
		t.Fatalf("served %d", seen)
	}
	if c.Withdraw(items[1]) {
		t.Fatal("withdrew a proposed item")
	}
}

func TestBytesLimitAndCallsNotSplit(t *testing.T) {
	c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = 10 })
	mustAdmit(t, c, t0, item(lease.OpExtend, "a0"), item(lease.OpExtend, "a1"), item(lease.OpExtend, "a2"))
	var call []*Item
	for i := range 8 {
		call = append(call, item(lease.OpExtend, fmt.Sprint("b", i)))
	}
	mustAdmit(t, c, t0, call...)
	if got := names(c.NextBatch(t0).Items); len(got) != 3 {
		t.Fatalf("a call of 8 that fits an entry alone was split: %v", got)
	}
	if got := names(c.NextBatch(t0).Items); len(got) != 8 {
		t.Fatalf("second entry %v, want the whole call", got)
	}

	// A call bigger than an entry is split in order.
	var big []*Item
	for i := range 25 {
		big = append(big, item(lease.OpExtend, fmt.Sprintf("x%02d", i)))
	}
	mustAdmit(t, c, t0, big...)
	var got []string
	for c.Len() > 0 {
		b := c.NextBatch(t0)
		if len(b.Items) > 10 {
			t.Fatalf("entry of %d ops", len(b.Items))
		}
		got = append(got, names(b.Items)...)
	}
	for i, n := range got {
		if n != fmt.Sprintf("x%02d", i) {
			t.Fatalf("split out of order: %v", got)
		}
	}

	// The byte bound holds too.
	c2 := newCore(t, func(s *Settings) { s.MaxBytesPerEntry = minEntryBytes })
	var long []*Item
	for i := range 50 {
		it := item(lease.OpExtend, fmt.Sprintf("%0200d", i))
		long = append(long, it)
		c2.Admit(t0, it)
	}
	b := c2.NextBatch(t0)
	if b.Bytes > minEntryBytes || len(b.Items) == 0 || len(b.Items) == 50 {
		t.Fatalf("entry of %d ops, %d bytes over a %d byte bound", len(b.Items), b.Bytes, minEntryBytes)
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := testSettings(nil).Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mut := range map[string]func(*Settings){
		"max_ops_per_entry":   func(s *Settings) { s.MaxOpsPerEntry = 0 },
		"max_bytes_per_entry": func(s *Settings) { s.MaxBytesPerEntry = 100 },
		"max_in_flight":       func(s *Settings) { s.MaxInFlight = 0 },
		"max_queued_ops":      func(s *Settings) { s.MaxQueuedOps = s.MaxOpsPerEntry - 1 },
		"claim_share":         func(s *Settings) { s.ClaimShare = 0 },
		"deadline_margin":     func(s *Settings) { s.DeadlineMargin = -1 },
		"deadlines.extend":    func(s *Settings) { s.Deadlines.Extend = 0 },
	} {
		s := testSettings(mut)
		err := s.Validate()
		var le *lease.Error
		if err == nil || !errorsAs(err, &le) || le.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	if _, err := NewCore(testSettings(func(s *Settings) { s.ClaimShare = 0.9 })); err == nil {
		t.Fatal("NewCore accepted bad settings")
	}
}

func errorsAs(err error, le **lease.Error) bool {
	e, ok := err.(*lease.Error)
	*le = e
	return ok
}

// Rejections by the hard cap are counted as queue_full, drain-time ones as
// overloaded: the runner tells them apart by cause, not by message text.
func TestRejectReasons(t *testing.T) {
	c := newCore(t, func(s *Settings) { s.MaxOpsPerEntry = 10; s.MaxQueuedOps = 10 })
	var full []*Item
	for i := range 11 {
		full = append(full, item(lease.OpExtend, fmt.Sprint("x", i)))
	}
	errs := c.Admit(t0, full...)
	if errs == nil || errs[0] == nil {
		t.Fatal("over the hard cap but admitted")
	}
	if r := reasonOf(errs[0]); r != ReasonQueueFull {
		t.Fatalf("hard cap rejection counted as %v", r)
	}
	if r := reasonOf(&lease.Error{Code: lease.CodeOverloaded, Message: "admission queue full"}); r != ReasonOverloaded {
		t.Fatalf("a drain-time rejection with the same text counted as %v", r)
	}
	if r := reasonOf(&lease.Error{Code: lease.CodeDeadlineExceeded}); r != ReasonDeadline {
		t.Fatalf("deadline rejection counted as %v", r)
	}
}
