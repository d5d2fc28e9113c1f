package fsm

import (
	"slices"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Claim-on-release. A queued claim (lease.OpQueueClaim) on a lease another
// holder has puts the claimant at the back of the key's FIFO with a
// keep-alive expiry in replicated time. When the lease is released (revoke,
// expiry, last unpin of an overdue lease) the first claimant whose keep-alive
// has not passed is granted the lease in the same apply step, so a release
// wakes exactly one claimant instead of a herd of claims. Claimants whose
// keep-alive passes are dropped through a min-heap on keep-alive expiry,
// O(expired log n) per entry, never a scan of all keys.

// waiter is one queued claimant.
type waiter struct {
	q        *waitQueue
	holder   string
	duration time.Duration // the lease duration it is granted with
	expiry   time.Duration // keep-alive: dropped once now passes it
	heapIdx  int
}

// waitQueue is one key's claimants in arrival order. Queues are short (the
// claimants of one lease), so removal by position is a copy, not a list.
type waitQueue struct {
	key     lease.Key
	waiters []*waiter
}

// waitHeap is a min-heap of waiters by keep-alive expiry, then key and
// holder: a total order, like the expiry heap's, so nothing done in pop
// order can differ between a live and a restored replica.
type waitHeap []*waiter

func (w *waiter) before(o *waiter) bool {
	if w.expiry != o.expiry {
		return w.expiry < o.expiry
	}
	if c := compareKeys(w.q.key, o.q.key); c != 0 {
		return c < 0
	}
	return w.holder < o.holder
}

func (h *waitHeap) push(w *waiter) {
	w.heapIdx = len(*h)
	*h = append(*h, w)
	h.up(len(*h) - 1)
}

func (h *waitHeap) remove(i int) {
	old := *h
	n := len(old) - 1
	w := old[i]
	if i != n {
		old[i] = old[n]
		old[i].heapIdx = i
	}
	old[n] = nil
	*h = old[:n]
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
	w.heapIdx = -1
}

func (h waitHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h waitHeap) down(i int) bool {
	start, n := i, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h[r].before(h[l]) {
			j = r
		}
		if !h[j].before(h[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > start
}

func (h waitHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

// fix restores heap order after w's expiry changed.
func (h waitHeap) fix(w *waiter) {
	if !h.down(w.heapIdx) {
		h.up(w.heapIdx)
	}
}

// dropExpiredWaiters removes every waiter whose keep-alive is before now.
func (m *Machine) dropExpiredWaiters() {
	for len(m.waitHeap) > 0 && m.waitHeap[0].expiry < m.now {
		m.unqueue(m.waitHeap[0])
	}
}

// unqueue removes w from its queue and the heap.
func (m *Machine) unqueue(w *waiter) {
	q := w.q
	if i := slices.Index(q.waiters, w); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
	}
	if len(q.waiters) == 0 {
		delete(m.queues, q.key)
	}
	if w.heapIdx >= 0 {
		m.waitHeap.remove(w.heapIdx)
	}
	m.queuedCount--
}

// QueueLen is the number of queued claimants over all keys.
func (m *Machine) QueueLen() int { return m.queuedCount }

// Queued returns key k's live claimants in arrival order.
func (m *Machine) Queued(k lease.Key) []string {
	q := m.queues[k]
	if q == nil {
		return nil
	}
	out := make([]string, 0, len(q.waiters))
	for _, w := range q.waiters {
		if w.expiry >= m.now {
			out = append(out, w.holder)
		}
	}
	return out
}

func (m *Machine) queueClaim(c *lease.Command) lease.Result {
	r := m.lookup(c.Key)
	if r == nil || r.holder() == c.Holder {
		// Absent: the queue has no live claimant (a release grants the
		// first one at once), so granting here jumps nobody.
		return m.claim(c)
	}
	expiry := m.now + c.Wait
	q := m.queues[c.Key]
	pos := -1
	if q != nil {
		pos = slices.IndexFunc(q.waiters, func(w *waiter) bool { return w.holder == c.Holder })
	}
	// A new claimant must ask for a duration it could be granted now; a
	// refresh (a renewal of its place) is not refused when the limits
	// changed, as its grant is clamped to the limits of its turn.
	if pos < 0 {
		if err := m.limits.CheckDuration(c.Duration); err != nil {
			return m.invalid(err)
		}
	}
	if q == nil {
		q = &waitQueue{key: c.Key}
		m.queues[c.Key] = q
	}
	if pos >= 0 {
		// A refresh keeps its place; the newest duration wins.
		w := q.waiters[pos]
		w.duration = c.Duration
		if expiry > w.expiry {
			w.expiry = expiry
			m.waitHeap.fix(w)
		}
		expiry = w.expiry
	} else {
		w := &waiter{q: q, holder: c.Holder, duration: c.Duration, expiry: expiry}
		q.waiters = append(q.waiters, w)
		m.waitHeap.push(w)
		m.queuedCount++
		pos = len(q.waiters) - 1
	}
	return lease.Result{Outcome: lease.OutcomeQueued, Holder: r.holder(), Token: r.token, Start: r.start,
		Expiry: r.expiry, Now: m.now, Position: pos + 1, WaitExpiry: expiry}
}

func (m *Machine) cancelQueue(c *lease.Command) lease.Result {
	if q := m.queues[c.Key]; q != nil {
		for _, w := range q.waiters {
			if w.holder == c.Holder {
				m.unqueue(w)
				return lease.Result{Outcome: lease.OutcomeDequeued, Now: m.now}
			}
		}
	}
	return lease.Result{Outcome: lease.OutcomeAbsent, Now: m.now}
}

// grantQueued gives the released lease at k to its first live claimant,
// for its duration clamped to the limits in force now: they may have
// changed since it queued, and a claimant is granted, never refused, at its
// turn (it learns the applied duration from the grant's Start and Expiry).
func (m *Machine) grantQueued(k lease.Key) {
	q := m.queues[k]
	for q != nil && len(q.waiters) > 0 {
		w := q.waiters[0]
		m.unqueue(w)
		if w.expiry < m.now {
			continue // defensive: dropExpiredWaiters runs first
		}
		m.grant(m.groups[groupKey{k.Namespace, k.Group}], k, w.holder, m.limits.Clamp(w.duration))
		return
	}
}
