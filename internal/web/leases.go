package web

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// leaseRow is one lease in /leases.json.
type leaseRow struct {
	Namespace string   `json:"ns"`
	Group     string   `json:"group"`
	Name      string   `json:"name"`
	Holder    string   `json:"holder"`
	Token     uint64   `json:"token"`
	LeftMs    int64    `json:"left_ms"` // expiry minus the replicated time read at (negative: pinned past expiry)
	HeldMs    int64    `json:"held_ms"` // time since the tenure's start
	PinnedBy  []string `json:"pinned_by,omitempty"`
}

type leasePage struct {
	AppliedIndex uint64     `json:"applied_index"`
	NowNs        int64      `json:"now_ns"`
	Total        int        `json:"total"`
	Matched      int        `json:"matched"`
	More         bool       `json:"more"`
	Leases       []leaseRow `json:"leases"`
	// ScanMicros is how long the page held the state machine's read lock
	// in all, over Reads reads, the longest for MaxHoldMicros.
	ScanMicros    int64 `json:"scan_us"`
	MaxHoldMicros int64 `json:"max_hold_us"`
	Reads         int   `json:"reads"`
}

// scanner serves lease pages from the replica's state without letting the
// page stall applies. It reads group by group (fsm.Machine.Groups), a chunk
// of groups per read, so the state machine's read lock is held for one
// chunk at a time, not for every lease; after a read that held the lock for
// d, the next read waits until dutyRatio*d has passed, so however hard the
// page is hammered it holds the lock at most a fifth of the time; one
// request scans at a time, and an identical query within a second is
// answered from the last result.
type scanner struct {
	b   grpcserver.Backend
	mu  sync.Mutex
	nxt time.Time
	// last answer, for identical queries within cacheFor
	lastQ  fsm.PageQuery
	lastAt time.Time
	lastP  leasePage
}

const (
	cacheFor = time.Second
	maxLimit = 500
)

var (
	// chunkLeases bounds the leases one read visits (a single larger
	// group is still read whole).
	chunkLeases = 8192
	// maxChunkedGroups: past this many groups, listing and sorting them
	// would cost what it saves; one read pages over everything instead.
	maxChunkedGroups = 4096
)

// dutyRatio is the rest after a read, in multiples of the time it held the
// lock (a var so the measurement can switch the limiter off to compare).
var dutyRatio time.Duration = 4

func (s *scanner) page(ctx context.Context, q fsm.PageQuery) (leasePage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q == s.lastQ && time.Since(s.lastAt) < cacheFor {
		return s.lastP, nil
	}
	var p leasePage
	var groups []fsm.GroupSize
	chunked := false
	if err := s.read(ctx, &p, func(m *fsm.Machine, at time.Duration) {
		p.Total = m.Len()
		groups, chunked = m.Groups(q.Namespace, q.Group, lease.Key{}, maxChunkedGroups)
		if !chunked {
			s.collect(&p, m, at, q, m.Page(q, at))
		}
	}); err != nil || !chunked {
		return s.done(q, p, err)
	}
	filtered := q.Name != "" || q.Holder != ""
	cursor := fsm.GroupSize{Namespace: q.After.Namespace, Group: q.After.Group}
	for len(groups) > 0 {
		// Unfiltered, a group wholly before the cursor or after a full
		// page is only counted, from its size (which may include a lease
		// past its expiry not yet expired by an entry: the count is an
		// upper bound).
		g := groups[0]
		if !filtered && (compareGroups(g, cursor) < 0 || len(p.Leases) == q.Limit) {
			p.Matched += g.Leases
			p.More = p.More || compareGroups(g, cursor) >= 0 && g.Leases > 0
			groups = groups[1:]
			continue
		}
		n, size := 0, 0
		for n < len(groups) && (n == 0 || size+groups[n].Leases <= chunkLeases) {
			size += groups[n].Leases
			n++
		}
		chunk := groups[:n]
		groups = groups[n:]
		if err := s.read(ctx, &p, func(m *fsm.Machine, at time.Duration) {
			for _, g := range chunk {
				gq := q
				gq.Namespace, gq.Group = g.Namespace, g.Group
				gq.Limit = max(q.Limit-len(p.Leases), 1)
				s.collect(&p, m, at, q, m.Page(gq, at))
			}
		}); err != nil {
			return s.done(q, p, err)
		}
	}
	return s.done(q, p, nil)
}

// read runs fn under the replica's read lock, after the rest the duty
// cycle asks for. Stale: the page shows this server's applied state (any
// server can serve it, and a follower's page is how one sees it lag).
func (s *scanner) read(ctx context.Context, p *leasePage, fn func(*fsm.Machine, time.Duration)) error {
	if wait := time.Until(s.nxt); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	var held time.Duration
	meta, err := s.b.Read(ctx, true, func(m *fsm.Machine, at time.Duration) {
		start := time.Now()
		fn(m, at)
		held = time.Since(start)
	})
	if err != nil {
		return err
	}
	p.AppliedIndex, p.NowNs = meta.AppliedIndex, int64(meta.Now)
	p.Reads++
	p.ScanMicros += held.Microseconds()
	p.MaxHoldMicros = max(p.MaxHoldMicros, held.Microseconds())
	s.nxt = time.Now().Add(dutyRatio * held)
	return nil
}

// collect adds one fsm page (of a group, or of everything) to p, keeping at
// most q.Limit leases.
func (s *scanner) collect(p *leasePage, m *fsm.Machine, at time.Duration, q fsm.PageQuery, res fsm.PageResult) {
	p.Matched += res.Matched
	for _, in := range res.Leases {
		if len(p.Leases) == q.Limit {
			p.More = true
			return
		}
		r := leaseRow{Namespace: in.Key.Namespace, Group: in.Key.Group, Name: in.Key.Name, Holder: in.Holder,
			Token: in.Token, LeftMs: (in.Expiry - at).Milliseconds(), HeldMs: (at - in.Start).Milliseconds()}
		if in.Pinned {
			r.PinnedBy = m.PinnedBy(in.Key)
		}
		p.Leases = append(p.Leases, r)
	}
	p.More = p.More || res.More
}

func (s *scanner) done(q fsm.PageQuery, p leasePage, err error) (leasePage, error) {
	if err != nil {
		return leasePage{}, err
	}
	if p.Leases == nil {
		p.Leases = []leaseRow{}
	}
	s.lastQ, s.lastAt, s.lastP = q, time.Now(), p
	return p, nil
}

func compareGroups(a, b fsm.GroupSize) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group))
}

func queryOf(r *http.Request) fsm.PageQuery {
	v := r.URL.Query()
	q := fsm.PageQuery{Namespace: v.Get("ns"), Group: v.Get("group"), Name: v.Get("name"), Holder: v.Get("holder"), Limit: 50,
		After: lease.Key{Namespace: v.Get("after_ns"), Group: v.Get("after_group"), Name: v.Get("after_name")}}
	if n, err := strconv.Atoi(v.Get("limit")); err == nil && n > 0 {
		q.Limit = min(n, maxLimit)
	}
	return q
}

func (s *scanner) serveLeases(w http.ResponseWriter, r *http.Request) {
	p, err := s.page(r.Context(), queryOf(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(p)
}

// leaseDetail is one lease now and its recorded history (/lease.json and
// the lease page).
type leaseDetail struct {
	Key          lease.Key `json:"-"`
	Namespace    string    `json:"ns"`
	Group        string    `json:"group"`
	Name         string    `json:"name"`
	Held         bool      `json:"held"`
	Info         leaseRow  `json:"lease"`
	NowNs        int64     `json:"now_ns"`
	AppliedIndex uint64    `json:"applied_index"`
	History      []Row     `json:"history"`
	// HistoryFrom is the oldest log index the history covers: events
	// before it left this server's window (History).
	HistoryFrom uint64 `json:"history_from_index"`
	Recording   bool   `json:"recording"` // false when this server keeps no history
}

func detailOf(ctx context.Context, b grpcserver.Backend, h *History, k lease.Key) (leaseDetail, error) {
	d := leaseDetail{Key: k, Namespace: k.Namespace, Group: k.Group, Name: k.Name, Recording: h != nil}
	meta, err := b.Read(ctx, true, func(m *fsm.Machine, at time.Duration) {
		in, ok := m.Get(k, at)
		if !ok {
			return
		}
		d.Held = true
		d.Info = leaseRow{Namespace: k.Namespace, Group: k.Group, Name: k.Name, Holder: in.Holder, Token: in.Token,
			LeftMs: (in.Expiry - at).Milliseconds(), HeldMs: (at - in.Start).Milliseconds()}
		if in.Pinned {
			d.Info.PinnedBy = m.PinnedBy(k)
		}
	})
	if err != nil {
		return d, err
	}
	d.NowNs, d.AppliedIndex = int64(meta.Now), meta.AppliedIndex
	if h != nil {
		d.History, d.HistoryFrom = h.Rows(k)
	}
	if d.History == nil {
		d.History = []Row{}
	}
	return d, nil
}

func keyOf(r *http.Request) lease.Key {
	v := r.URL.Query()
	return lease.Key{Namespace: v.Get("ns"), Group: v.Get("group"), Name: v.Get("name")}
}
