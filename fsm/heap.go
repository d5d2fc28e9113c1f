package fsm

// expiryHeap is a min-heap of records by expiry, with each record's index
// kept in record.heapIdx so extends and revokes can fix or remove in O(log n).
// It is written out rather than built on container/heap to avoid interface
// calls on the apply path.
type expiryHeap []*record

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
		if h[p].expiry <= h[i].expiry {
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
		if r := l + 1; r < n && h[r].expiry < h[l].expiry {
			j = r
		}
		if h[i].expiry <= h[j].expiry {
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
