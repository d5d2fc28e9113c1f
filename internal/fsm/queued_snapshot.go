package fsm

import (
	"github.com/leasehold/leasehold/internal/binenc"

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
		b = binenc.AppendString(b, k.Namespace)
		b = binenc.AppendString(b, k.Group)
		b = binenc.AppendString(b, k.Name)
		b = binary.AppendUvarint(b, uint64(len(q.waiters)))
		for _, w := range q.waiters {
			b = binenc.AppendString(b, w.holder)
			b = binary.AppendVarint(b, int64(w.duration))
			b = binary.AppendVarint(b, int64(w.expiry))
		}
	}
	return b
}

func (m *Machine) readQueues(d *reader) {
	nq := d.Count(5)
	for i := 0; i < nq && d.Err == nil; i++ {
		k := lease.Key{Namespace: d.Str(), Group: d.Str(), Name: d.Str()}
		nw := d.Count(3)
		if d.Err != nil {
			return
		}
		if _, dup := m.queues[k]; dup || nw == 0 {
			d.Fail("queue")
			return
		}
		q := &waitQueue{key: k, waiters: make([]*waiter, 0, nw)}
		m.queues[k] = q
		for j := 0; j < nw && d.Err == nil; j++ {
			w := &waiter{q: q, holder: d.Str(), duration: time.Duration(d.Varint()), expiry: time.Duration(d.Varint())}
			if slices.ContainsFunc(q.waiters, func(o *waiter) bool { return o.holder == w.holder }) {
				d.Fail("queued claimant")
				return
			}
			q.waiters = append(q.waiters, w)
			m.waitHeap.push(w)
			m.queuedCount++
		}
	}
}
