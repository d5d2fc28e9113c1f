package fsm

import "strings"

// expiryHeap is a min-heap of records by (expiry, key), with each record's
// index kept in record.heapIdx so extends and revokes can fix or remove in
// O(log n). It is written out rather than built on container/heap to avoid
// interface calls on the apply path.
//
// The order is total: leases due at one instant are released in key order,
// and each release may grant a queued claimant the next token. Ordered by
// expiry alone, ties would pop in an order that depends on the heap's
// history, which differs between a live replica and one restored from a
// snapshot (whose heap is rebuilt in key order): tokens would be handed out
// differently on the two.
type expiryHeap []*record

// before is the heap's order: expiry, then namespace, group and name (a
// key names one record, so no two records compare equal). gs is the
// machine's group table, where records find their group keys; every method
// that compares takes it.
func before(a, b *record, gs []*group) bool {
	if a.expiry != b.expiry {
		return a.expiry < b.expiry
	}
	if a.gnum != b.gnum {
		ga, gb := gs[a.gnum], gs[b.gnum]
		if c := strings.Compare(ga.key.ns, gb.key.ns); c != 0 {
			return c < 0
		}
		return ga.key.group < gb.key.group
	}
	return a.name() < b.name()
}

func (h *expiryHeap) push(r *record, gs []*group) {
	r.heapIdx = int32(len(*h))
	*h = append(*h, r)
	h.up(len(*h)-1, gs)
}

func (h *expiryHeap) pop(gs []*group) *record {
	return h.remove(0, gs)
}

func (h *expiryHeap) remove(i int, gs []*group) *record {
	old := *h
	n := len(old) - 1
	r := old[i]
	if i != n {
		old[i] = old[n]
		old[i].heapIdx = int32(i)
	}
	old[n] = nil
	*h = old[:n]
	if i != n {
		h.fix(i, gs)
	}
	r.heapIdx = -1
	return r
}

func (h expiryHeap) fix(i int, gs []*group) {
	if !h.down(i, gs) {
		h.up(i, gs)
	}
}

func (h expiryHeap) up(i int, gs []*group) {
	for i > 0 {
		p := (i - 1) / 2
		if !before(h[i], h[p], gs) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h expiryHeap) down(i int, gs []*group) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && before(h[r], h[l], gs) {
			j = r
		}
		if !before(h[j], h[i], gs) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > start
}

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}
