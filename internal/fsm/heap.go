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
// key names one record, so no two records compare equal).
func before(a, b *record) bool {
	if a.expiry != b.expiry {
		return a.expiry < b.expiry
	}
	if a.g != b.g {
		if c := strings.Compare(a.g.key.ns, b.g.key.ns); c != 0 {
			return c < 0
		}
		return a.g.key.group < b.g.key.group
	}
	return a.name() < b.name()
}

func (h *expiryHeap) push(r *record) {
	r.heapIdx = int32(len(*h))
	*h = append(*h, r)
	h.up(len(*h) - 1)
}

func (h *expiryHeap) pop() *record {
	return h.remove(0)
}

func (h *expiryHeap) remove(i int) *record {
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
		h.fix(i)
	}
	r.heapIdx = -1
	return r
}

func (h expiryHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !before(h[i], h[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h expiryHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && before(h[r], h[l]) {
			j = r
		}
		if !before(h[j], h[i]) {
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
