package admission

import (
	"errors"
	"math"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

type itemState uint8

const (
	stateNew       itemState = iota
	stateQueued              // in a lane
	stateProposed            // taken into an entry: may apply from now on
	stateDropped             // deadline passed while queued: never proposed
	stateWithdrawn           // caller gone before proposal: never proposed
	stateRejected            // refused at admission
)

// Item is one op in the core. Cmd.Deadline is ignored here (the runner
// writes the replicated deadline when it builds the entry); Deadline is the
// caller's local deadline on the way in (zero: none) and the effective one
// after Admit.
type Item struct {
	Cmd      lease.Command
	Deadline time.Time
	Enqueued time.Time

	bytes int
	lane  Lane
	seq   uint64 // arrival order; entries are sorted by it
	state itemState
	// groupOps/groupBytes are set on the first item a call put in a lane:
	// the size of that call's run, so NextBatch can avoid splitting a call
	// that would fit whole in the next entry.
	groupOps, groupBytes int

	req *request // owner, for the runner
	idx int      // index in the owner's cmds
}

// fifo is one lane: a slice queue with lazy deletion of withdrawn items
// (removing from the middle on every cancel would be O(n)).
type fifo struct {
	items []*Item
	head  int
	dead  int // withdrawn items still in items[head:]
}

func (f *fifo) push(it *Item) { f.items = append(f.items, it) }

// peek returns the first live item, discarding withdrawn ones.
func (f *fifo) peek() *Item {
	for f.head < len(f.items) {
		it := f.items[f.head]
		if it.state == stateQueued {
			return it
		}
		f.pop()
		f.dead--
	}
	return nil
}

func (f *fifo) pop() {
	f.items[f.head] = nil
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head >= 1024 && f.head*2 >= len(f.items) {
		f.items = append(f.items[:0], f.items[f.head:]...)
		f.head = 0
	}
}

// compact drops withdrawn items once they outnumber live ones, so a storm of
// cancellations behind a stuck head cannot grow memory past the hard cap.
func (f *fifo) compact() {
	live := len(f.items) - f.head - f.dead
	if f.dead < 256 || f.dead < live {
		return
	}
	n := 0
	for _, it := range f.items[f.head:] {
		if it.state == stateQueued {
			f.items[n] = it
			n++
		}
	}
	clear(f.items[n:])
	f.items, f.head, f.dead = f.items[:n], 0, 0
}

// Core is the admission queue's deterministic heart: lanes, the drain-rate
// and latency estimates, admission and batch building. It has no goroutines,
// clocks or I/O: every method takes the time as an argument, so tests drive
// it step by step. It is not safe for concurrent use.
type Core struct {
	s     Settings
	lanes [numLanes]fifo
	depth [numLanes]int
	seq   uint64
	est   estimator
	// claimCredit accrues ClaimShare per entry while claims wait; it only
	// matters when entries hold one op.
	claimCredit float64
}

// NewCore returns an empty core.
func NewCore(s Settings) (*Core, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Core{s: s, est: newEstimator()}, nil
}

// SetSettings swaps the settings; queued ops keep their deadlines.
func (c *Core) SetSettings(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	c.s = s
	return nil
}

// Settings returns the current settings.
func (c *Core) Settings() Settings { return c.s }

// Depth returns the number of queued ops in lane l.
func (c *Core) Depth(l Lane) int { return c.depth[l] }

// Len returns the number of queued ops.
func (c *Core) Len() int { return c.depth[LaneRenewal] + c.depth[LaneClaim] }

// Ready reports whether the next entry should be proposed now, with
// inFlight entries proposed and not yet applied. With none in flight any
// queued op goes at once (a lone caller waits for nothing). With some in
// flight, only a whole entry's worth of work (fullEntryOps) goes beside them (up to
// MaxInFlight): a partial entry waits for the commit and leaves with the
// ops that arrive meanwhile. Entries proposed while one commits are
// written by the leader and each follower in the same log write as far as
// Raft batches them, but each is a round of work for every member; one
// partial entry at a time made 100 streamed renewers' log writes per op
// 0.11 → 0.07 and their throughput 6-29 % higher (docs/performance.md,
// section 14). When the log is the bottleneck the queue holds whole entries,
// so MaxInFlight of them are in flight as before.
func (c *Core) Ready(inFlight int) bool {
	n := c.Len()
	switch {
	case n == 0 || inFlight >= c.s.MaxInFlight:
		return false
	case inFlight == 0:
		return true
	}
	return float64(n) >= c.fullEntryOps()
}

// errQueueFull is the cause of rejections by the hard cap, so metrics can
// tell them from drain-time rejections without reading the message.
var errQueueFull = errors.New("hard cap on queued ops reached")

// Admit decides every item of one call and queues those it accepts. It
// returns nil when all were accepted, or one error per item (nil where
// accepted): CodeOverloaded with RetryAfter when the expected wait exceeds
// the item's remaining deadline or the hard cap would be passed (the cap
// rejects all of the call's ops in a lane), CodeDeadlineExceeded when the
// deadline is already too close to make it even through an empty queue.
func (c *Core) Admit(now time.Time, items ...*Item) []*lease.Error {
	var errs []*lease.Error
	reject := func(i int, e *lease.Error) {
		if errs == nil {
			errs = make([]*lease.Error, len(items))
		}
		errs[i] = e
		items[i].state = stateRejected
	}
	n := assignLanes(items)
	var full [numLanes]*lease.Error
	for l, over := range c.overCap(n) {
		if over > 0 {
			full[l] = &lease.Error{Code: lease.CodeOverloaded, Message: "admission queue full", Cause: errQueueFull,
				RetryAfter: clampRetry(c.est.opsTime(float64(over), c.rate()))}
		}
	}
	var first [numLanes]*Item
	for i, it := range items {
		if e := full[it.lane]; e != nil {
			reject(i, e)
			continue
		}
		it.bytes = logentry.CommandSize(&it.Cmd)
		it.Enqueued = now
		def := now.Add(c.s.Deadlines.For(it.Cmd.Op))
		if it.Deadline.IsZero() || def.Before(it.Deadline) {
			it.Deadline = def
		}
		left := it.Deadline.Sub(now) - c.s.DeadlineMargin
		wait := c.expectedWait(it.lane)
		if left <= c.est.latency {
			reject(i, &lease.Error{Code: lease.CodeDeadlineExceeded,
				Message: "deadline too close to commit even through an empty queue; not applied"})
			continue
		}
		if wait > left {
			reject(i, &lease.Error{Code: lease.CodeOverloaded, RetryAfter: clampRetry(wait - left)})
			continue
		}
		c.est.admitted(it.bytes)
		c.seq++
		it.seq = c.seq
		it.state = stateQueued
		c.lanes[it.lane].push(it)
		c.depth[it.lane]++
		if f := first[it.lane]; f == nil {
			first[it.lane] = it
		}
		f := first[it.lane]
		f.groupOps++
		f.groupBytes += it.bytes
	}
	return errs
}

// assignLanes puts each item in its op's lane and counts them per lane.
// Lanes are served out of arrival order (renewals first, yet claims take
// their share of an entry while older renewals wait), so a call's ops on one
// key in both lanes could apply reordered either way: [claim K, extend K]
// with the extend first answers NotHeld, [revoke K, claim K] with the claim
// first answers Denied. All of that call's ops on such a key go in the
// renewal lane, where they keep the call's order. The renewal lane, not the claim
// lane: a lease manager's batch mixes one holder's extend of K with another
// holder's claim of K, and that extend must keep its priority. What a claim
// gains by it is bounded by the renewals in its own call.
func assignLanes(items []*Item) (n [numLanes]int) {
	for _, it := range items {
		it.lane = LaneOf(it.Cmd.Op)
		n[it.lane]++
	}
	if n[LaneRenewal] == 0 || n[LaneClaim] == 0 {
		return n
	}
	renewed := make(map[lease.Key]struct{}, n[LaneRenewal])
	for _, it := range items {
		if it.lane == LaneRenewal {
			renewed[it.Cmd.Key] = struct{}{}
		}
	}
	for _, it := range items {
		if _, ok := renewed[it.Cmd.Key]; ok && it.lane == LaneClaim {
			it.lane = LaneRenewal
			n[LaneClaim]--
			n[LaneRenewal]++
		}
	}
	return n
}

// claimCap is how many claims may be queued: the hard cap less a reserve
// for renewals, so a claim flood that the drain-time check admits (commit
// latency is low, claims are many) cannot fill the cap and lock renewals
// out, which would cost holders their leases. The reserve is half the cap,
// or less when needed to keep room for a full entry of claims.
func (c *Core) claimCap() int {
	hard := c.s.MaxQueuedOps
	return hard - min(hard/2, hard-c.s.MaxOpsPerEntry)
}

// overCap returns, per lane, by how many ops a call adding n[l] ops to lane
// l would pass the hard cap (0: they fit). Renewals may fill the whole cap;
// claims only claimCap of it, and a call's claims are checked after its
// renewals so that the total stays within the cap. A lane's ops of one call
// are refused together, never cut.
func (c *Core) overCap(n [numLanes]int) (over [numLanes]int) {
	total := c.Len()
	if n[LaneRenewal] > 0 {
		if o := total + n[LaneRenewal] - c.s.MaxQueuedOps; o > 0 {
			over[LaneRenewal] = o
		} else {
			total += n[LaneRenewal]
		}
	}
	if k := n[LaneClaim]; k > 0 {
		over[LaneClaim] = max(0, c.depth[LaneClaim]+k-c.claimCap(), total+k-c.s.MaxQueuedOps)
	}
	return over
}

// expectedWait is the time an op joining lane l now would wait to be
// applied: the ops served before it at the drain rate, plus commit latency.
// Renewals are served first, but claims hold ClaimShare of each entry, so
// while both wait a renewal also waits for that share of claims (and a claim
// for the complementary share of renewals), never more than are queued.
func (c *Core) expectedWait(l Lane) time.Duration {
	r, k := float64(c.depth[LaneRenewal]), float64(c.depth[LaneClaim])
	s := c.s.ClaimShare
	var ahead float64
	if l == LaneRenewal {
		ahead = r + math.Min(k, r*s/(1-s))
	} else {
		ahead = k + math.Min(r, k*(1-s)/s)
	}
	return c.est.opsTime(ahead, c.rate()) + c.est.latency
}

// rate is the drain rate in ops/s by Little's law: when the log is the
// bottleneck, MaxInFlight full entries are always in flight, each taking the
// commit latency, so rate = MaxInFlight x opsPerEntry / latency. It is what
// the queue drains at under backlog, which is when admission matters. Unlike
// measured throughput it does not mistake a light offered load for low
// capacity (which would reject a burst an idle leader could serve), and the
// latency of full entries is measured exactly when a backlog makes entries
// full. A full entry holds MaxOpsPerEntry ops, or fewer when typical ops are
// big enough for MaxBytesPerEntry to bind first.
func (c *Core) rate() float64 {
	return float64(c.s.MaxInFlight) * c.fullEntryOps() / c.est.latency.Seconds()
}

// fullEntryOps is how many ops fill an entry: MaxOpsPerEntry, or fewer when
// ops of the smoothed admitted size reach MaxBytesPerEntry first.
func (c *Core) fullEntryOps() float64 {
	n := float64(c.s.MaxOpsPerEntry)
	if c.est.opBytes > 0 {
		n = math.Min(n, float64(c.s.MaxBytesPerEntry)/c.est.opBytes)
	}
	return n
}

// Withdraw removes a queued item (its caller went away). It reports whether
// the item was still queued; false means it was already proposed, dropped or
// rejected, and the caller must treat it accordingly.
func (c *Core) Withdraw(it *Item) bool {
	if it.state != stateQueued {
		return false
	}
	it.state = stateWithdrawn
	c.depth[it.lane]--
	f := &c.lanes[it.lane]
	f.dead++
	f.compact()
	return true
}

// ExpireQueued drops every queued item whose deadline (less the margin)
// has passed at now, as NextBatch would, and returns them, with the
// earliest moment an item still queued is due to be dropped (zero when
// none has a deadline). The runner calls it from one timer for the whole
// queue, so a caller learns of its expiry at its deadline even while no
// entry is being built (Raft stuck), without a timer per call.
func (c *Core) ExpireQueued(now time.Time) (dropped []*Item, next time.Time) {
	for l := range c.lanes {
		f := &c.lanes[l]
		for _, it := range f.items[f.head:] {
			if it.state != stateQueued || it.Deadline.IsZero() {
				continue
			}
			at := c.ExpiresAt(it)
			if !at.After(now) {
				dropped = append(dropped, it)
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	// Withdraw may compact a lane, so not while walking it.
	for _, it := range dropped {
		c.Withdraw(it)
		it.state = stateDropped
	}
	return dropped, next
}

// ExpiresAt is when the queued item it is due to be dropped (its deadline
// less the margin), or zero when it has no deadline.
func (c *Core) ExpiresAt(it *Item) time.Time {
	if it.Deadline.IsZero() {
		return time.Time{}
	}
	return it.Deadline.Add(-c.s.DeadlineMargin)
}

// Batch is what NextBatch takes from the lanes.
type Batch struct {
	// Items are the ops of the next entry, in arrival order.
	Items []*Item
	// Bytes is their size bound (logentry.CommandSize summed).
	Bytes int
	// Dropped are ops whose deadline passed while queued; answer them
	// CodeDeadlineExceeded. They were never proposed.
	Dropped []*Item

	n int // ops taken so far, across both lanes
}

// NextBatch takes the ops of the next entry: renewals first, up to all but
// ClaimShare of the entry when claims wait, then claims, then renewals again
// to fill what claims left. Ops too close to their deadline are dropped on
// the way. The result is sorted by arrival, so ops of one call keep their
// order and concurrent conflicting ops apply first-come first-served.
func (c *Core) NextBatch(now time.Time) Batch {
	var b Batch
	maxOps, maxBytes := c.s.MaxOpsPerEntry, c.s.MaxBytesPerEntry
	resOps, resBytes := 0, 0
	if c.depth[LaneClaim] > 0 {
		resBytes = int(c.s.ClaimShare * float64(maxBytes))
		if maxOps > 1 {
			resOps = min(maxOps-1, max(1, int(math.Ceil(c.s.ClaimShare*float64(maxOps)))))
		} else {
			// One-op entries cannot be shared; give claims whole entries
			// at their share instead.
			c.claimCredit += c.s.ClaimShare
			if c.claimCredit >= 1 {
				c.claimCredit--
				resOps = 1
			}
		}
	}
	var renew, claim []*Item
	renew = c.take(LaneRenewal, now, maxOps-resOps, maxBytes-resBytes, &b, renew)
	claim = c.take(LaneClaim, now, maxOps, maxBytes, &b, claim)
	renew = c.take(LaneRenewal, now, maxOps, maxBytes, &b, renew)
	b.Items = mergeBySeq(renew, claim)
	return b
}

// take moves items from lane l into dst while the batch stays within
// opsLimit and bytesLimit.
func (c *Core) take(l Lane, now time.Time, opsLimit, bytesLimit int, b *Batch, dst []*Item) []*Item {
	f := &c.lanes[l]
	for {
		it := f.peek()
		if it == nil {
			return dst
		}
		if !it.Deadline.Add(-c.s.DeadlineMargin).After(now) {
			f.pop()
			it.state = stateDropped
			c.depth[l]--
			b.Dropped = append(b.Dropped, it)
			continue
		}
		n := b.n // the first op always fits: minEntryBytes exceeds any command
		// Hold back a call that would fit whole in an entry of its own rather
		// than split it; the next entry starts with it.
		if g := it.groupOps; g > 1 && g <= opsLimit && it.groupBytes <= bytesLimit &&
			(n+g > opsLimit || b.Bytes+it.groupBytes > bytesLimit) && n > 0 {
			return dst
		}
		if n+1 > opsLimit || (n > 0 && b.Bytes+it.bytes > bytesLimit) {
			return dst
		}
		f.pop()
		it.state = stateProposed
		c.depth[l]--
		b.Bytes += it.bytes
		b.n++
		dst = append(dst, it)
	}
}

func mergeBySeq(a, b []*Item) []*Item {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]*Item, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i].seq < b[j].seq {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// DrainAll withdraws every queued item (the queue is closing) and returns them.
func (c *Core) DrainAll() []*Item {
	var out []*Item
	for l := range c.lanes {
		f := &c.lanes[l]
		for it := f.peek(); it != nil; it = f.peek() {
			f.pop()
			it.state = stateWithdrawn
			out = append(out, it)
		}
		c.depth[l] = 0
	}
	return out
}

// Completed records that an entry was applied latency after it was
// proposed; it feeds the commit-latency estimate that the drain rate derives
// from.
func (c *Core) Completed(latency time.Duration) {
	c.est.completed(latency)
}

// Stats returns the core's part of a Stats snapshot.
func (c *Core) Stats() Stats {
	return Stats{
		Depth:         c.depth,
		DrainRate:     c.rate(),
		Measured:      c.est.measured,
		CommitLatency: c.est.latency,
		EstimatedWait: [numLanes]time.Duration{c.expectedWait(LaneRenewal), c.expectedWait(LaneClaim)},
	}
}

const (
	minRetryAfter = 10 * time.Millisecond
	maxRetryAfter = 30 * time.Second
)

func clampRetry(d time.Duration) time.Duration {
	return min(max(d, minRetryAfter), maxRetryAfter)
}

// estimator smooths commit latency and op size.
type estimator struct {
	latency  time.Duration
	measured bool
	opBytes  float64 // EWMA of logentry.CommandSize of admitted ops
}

const (
	initialLatency = 10 * time.Millisecond
	latencyAlpha   = 0.2
	bytesAlpha     = 0.01
)

func newEstimator() estimator { return estimator{latency: initialLatency} }

func (e *estimator) opsTime(ops, rate float64) time.Duration {
	if ops <= 0 {
		return 0
	}
	return time.Duration(ops / rate * float64(time.Second))
}

func (e *estimator) admitted(bytes int) {
	if e.opBytes == 0 {
		e.opBytes = float64(bytes)
	} else {
		e.opBytes += bytesAlpha * (float64(bytes) - e.opBytes)
	}
}

func (e *estimator) completed(latency time.Duration) {
	if latency <= 0 {
		return
	}
	if !e.measured {
		e.latency, e.measured = latency, true
		return
	}
	e.latency += time.Duration(latencyAlpha * float64(latency-e.latency))
	e.latency = max(e.latency, time.Microsecond)
}
