package fsm

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// PageQuery selects the leases of one page of a listing (the status page's
// lease table).
type PageQuery struct {
	// Namespace and Group match exactly; empty matches all.
	Namespace, Group string
	// Name and Holder match as substrings; empty matches all.
	Name, Holder string
	// After is the cursor: only keys strictly after it are returned (the
	// zero key starts from the beginning).
	After lease.Key
	// Limit is the page size (at least 1).
	Limit int
}

// PageResult is one page of leases in key order.
type PageResult struct {
	Leases []lease.Info
	// Matched counts every held lease matching the query's filters, before
	// and after the cursor.
	Matched int
	// More reports whether matching leases follow the last one returned.
	More bool
}

// Page returns up to q.Limit leases held at replicated time at (raised to
// Now) matching q, in key order after q.After.
//
// Unlike List it never sorts all leases: it visits each lease of the
// matching groups once, in the groups' sets' order (which depends on the
// machine's hash seed, so differs between replicas), keeping the Limit
// smallest keys after the cursor in a bounded max-heap: the page is the
// same whatever the order. A page costs O(n log Limit) time and O(Limit)
// memory, the same for the first page as for the ten thousandth.
// Read-only: call it under the replica's read lock.
func (m *Machine) Page(q PageQuery, at time.Duration) PageResult {
	at = max(at, m.now)
	limit := max(q.Limit, 1)
	var res PageResult
	top := make(pageHeap, 0, limit+1)
	groups := m.groups
	if q.Namespace != "" && q.Group != "" {
		// One group: look it up rather than visit every group (a caller
		// paging group by group would otherwise pay O(groups) per group).
		groups = nil
		if g := m.groups[groupKey{q.Namespace, q.Group}]; g != nil {
			groups = map[groupKey]*group{g.key: g}
		}
	}
	for gk, g := range groups {
		if (q.Namespace != "" && gk.ns != q.Namespace) || (q.Group != "" && gk.group != q.Group) {
			continue
		}
		// Whole groups before the cursor's group hold no candidate, but
		// they still count as matches.
		before := compareGroupKeys(gk, groupKey{q.After.Namespace, q.After.Group})
		// Once the heap is full of keys from earlier groups, this group's
		// leases only count.
		countOnly := before < 0 || len(top) == limit && compareGroupKeys(gk, m.group(top[0]).key) > 0
		for r := range g.leases.all() {
			name := r.name()
			if q.Name != "" && !strings.Contains(name, q.Name) {
				continue
			}
			if q.Holder != "" && !strings.Contains(r.holder(), q.Holder) {
				continue
			}
			// Only a lease past its expiry needs the pin lookup.
			if r.expiry < at && !m.isPinned(r) {
				continue
			}
			res.Matched++
			if countOnly {
				if before >= 0 {
					res.More = true
				}
				continue
			}
			if before == 0 && name <= q.After.Name {
				continue
			}
			if len(top) == limit && compareRecords(r, top[0], m.gtab) >= 0 {
				res.More = true
				continue
			}
			top.push(r, m.gtab)
			if len(top) > limit {
				top.pop(m.gtab)
				res.More = true
			}
		}
	}
	slices.SortFunc(top, func(a, b *record) int { return compareRecords(a, b, m.gtab) })
	res.Leases = make([]lease.Info, len(top))
	for i, r := range top {
		res.Leases[i], _ = m.info(r)
	}
	return res
}

// GroupSize is one group of leases and how many it holds (including any
// past their expiry that no entry has expired yet).
type GroupSize struct {
	Namespace, Group string
	Leases           int
}

// Groups returns the groups in namespace ns and group grp (all if empty)
// from the group of after on, in key order, with their sizes; or nil and
// false, without sorting, when more than max groups match. It lets a caller
// page group by group, releasing the read lock between groups.
func (m *Machine) Groups(ns, grp string, after lease.Key, max int) ([]GroupSize, bool) {
	from := groupKey{after.Namespace, after.Group}
	var out []GroupSize
	for gk, g := range m.groups {
		if (ns != "" && gk.ns != ns) || (grp != "" && gk.group != grp) || compareGroupKeys(gk, from) < 0 {
			continue
		}
		if len(out) == max {
			return nil, false
		}
		out = append(out, GroupSize{gk.ns, gk.group, g.leases.len()})
	}
	slices.SortFunc(out, func(a, b GroupSize) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group))
	})
	return out, true
}

// PinnedBy returns the entities pinning k, sorted (nil if none).
func (m *Machine) PinnedBy(k lease.Key) []string {
	set := m.pins[k]
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for e := range set {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

func (m *Machine) isPinned(r *record) bool { return len(m.pins[m.key(r)]) > 0 }

func compareNames(a, b *record) int { return strings.Compare(a.name(), b.name()) }

// compareRecords orders records by key; gs is the machine's group table.
func compareRecords(a, b *record, gs []*group) int {
	if a.gnum == b.gnum {
		return strings.Compare(a.name(), b.name())
	}
	return cmp.Or(compareGroupKeys(gs[a.gnum].key, gs[b.gnum].key), strings.Compare(a.name(), b.name()))
}

// pageHeap is a max-heap of records by key: its root is the largest key
// kept, the first to go when a smaller one arrives. gs is the machine's
// group table.
type pageHeap []*record

func (h *pageHeap) push(r *record, gs []*group) {
	*h = append(*h, r)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if compareRecords(s[i], s[p], gs) <= 0 {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pageHeap) pop(gs []*group) {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s[n] = nil
	s = s[:n]
	for i := 0; ; {
		l, big := 2*i+1, i
		if l < n && compareRecords(s[l], s[big], gs) > 0 {
			big = l
		}
		if r := l + 1; r < n && compareRecords(s[r], s[big], gs) > 0 {
			big = r
		}
		if big == i {
			break
		}
		s[i], s[big] = s[big], s[i]
		i = big
	}
	*h = s
}
