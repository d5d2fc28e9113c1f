package fsm

import (
	"cmp"
	"slices"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// visible reports whether r is still held at replicated time at. Leases whose
// expiry has passed but which no entry has yet expired are not reported: a
// claim proposed now would be granted over them.
func visible(r *record, at time.Duration, pinned bool) bool {
	return pinned || r.expiry >= at
}

func (m *Machine) info(r *record) (lease.Info, bool) {
	k := m.key(r)
	return lease.Info{Key: k, Holder: r.holder(), Token: r.token, Start: r.start, Expiry: r.expiry, Pinned: len(m.pins[k]) > 0}, true
}

// Get returns the lease at k as held at replicated time at (raised to Now).
func (m *Machine) Get(k lease.Key, at time.Duration) (lease.Info, bool) {
	at = max(at, m.now)
	r := m.lookup(k)
	if r == nil {
		return lease.Info{}, false
	}
	info, _ := m.info(r)
	if !visible(r, at, info.Pinned) {
		return lease.Info{}, false
	}
	return info, true
}

// List returns up to limit leases (all if limit <= 0) held at replicated time
// at, in key order, in namespace ns (all if empty) and group grp (all if
// empty), starting after the key after (from the start if zero).
func (m *Machine) List(ns, grp string, after lease.Key, limit int, at time.Duration) []lease.Info {
	at = max(at, m.now)
	var gks []groupKey
	for gk := range m.groups {
		if (ns == "" || gk.ns == ns) && (grp == "" || gk.group == grp) &&
			cmp.Or(cmp.Compare(gk.ns, after.Namespace), cmp.Compare(gk.group, after.Group)) >= 0 {
			gks = append(gks, gk)
		}
	}
	slices.SortFunc(gks, compareGroupKeys)
	var out []lease.Info
	for _, gk := range gks {
		g := m.groups[gk]
		recs := make([]*record, 0, g.leases.len())
		sameGroup := gk.ns == after.Namespace && gk.group == after.Group
		for r := range g.leases.all() {
			if !sameGroup || r.name() > after.Name {
				recs = append(recs, r)
			}
		}
		slices.SortFunc(recs, compareNames)
		for _, r := range recs {
			info, _ := m.info(r)
			if !visible(r, at, info.Pinned) {
				continue
			}
			out = append(out, info)
			if limit > 0 && len(out) == limit {
				return out
			}
		}
	}
	return out
}

// Pinned returns every pinned key with its pinning entities, sorted.
func (m *Machine) Pinned() map[lease.Key][]string {
	out := make(map[lease.Key][]string, len(m.pins))
	for k, set := range m.pins {
		es := make([]string, 0, len(set))
		for e := range set {
			es = append(es, e)
		}
		slices.Sort(es)
		out[k] = es
	}
	return out
}

func compareGroupKeys(a, b groupKey) int {
	return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.group, b.group))
}
