package fsm

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/lease"
)

func compareKeys(a, b lease.Key) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group), strings.Compare(a.Name, b.Name))
}

// appendQueues writes the claim queues in key order, claimants in arrival order.
func (m *Machine) appendQueues(b []byte) []byte {
	keys := make([]lease.Key, 0, len(m.queues))
	for k := range m.queues {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		q := m.queues[k]
		b = appendString(b, k.Namespace)
		b = appendString(b, k.Group)
		b = appendString(b, k.Name)
		b = binary.AppendUvarint(b, uint64(len(q.waiters)))
		for _, w := range q.waiters {
			b = appendString(b, w.holder)
			b = binary.AppendVarint(b, int64(w.duration))
			b = binary.AppendVarint(b, int64(w.expiry))
		}
	}
	return b
}

func (m *Machine) readQueues(d *reader) {
	nq := d.count(5)
	for i := 0; i < nq && d.err == nil; i++ {
		k := lease.Key{Namespace: d.string(), Group: d.string(), Name: d.string()}
		nw := d.count(3)
		if d.err != nil {
			return
		}
		if _, dup := m.queues[k]; dup || nw == 0 {
			d.fail("queue")
			return
		}
		q := &waitQueue{key: k, waiters: make([]*waiter, 0, nw)}
		m.queues[k] = q
		for j := 0; j < nw && d.err == nil; j++ {
			w := &waiter{q: q, holder: d.string(), duration: time.Duration(d.varint()), expiry: time.Duration(d.varint())}
			if slices.ContainsFunc(q.waiters, func(o *waiter) bool { return o.holder == w.holder }) {
				d.fail("queued claimant")
				return
			}
			q.waiters = append(q.waiters, w)
			m.waitHeap.push(w)
			m.queuedCount++
		}
	}
}
