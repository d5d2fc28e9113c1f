package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/leasehold/leasehold/fsm"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/server"
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
	// Scan is how long the page held the state machine's read lock.
	ScanMicros int64 `json:"scan_us"`
}

// scanner serves lease pages from the replica's state without letting the
// page stall applies: one scan at a time, an identical query within a
// second is answered from the last result, and after a scan that held the
// read lock for d the next waits until 4d has passed, so however hard the
// page is hammered it holds the lock at most a fifth of the time.
type scanner struct {
	b   server.Backend
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

// dutyRatio is the rest after a scan, in multiples of the scan (a var so
// the measurement can switch the limiter off to compare).
var dutyRatio time.Duration = 4

func (s *scanner) page(ctx context.Context, q fsm.PageQuery) (leasePage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q == s.lastQ && time.Since(s.lastAt) < cacheFor {
		return s.lastP, nil
	}
	if wait := time.Until(s.nxt); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return leasePage{}, ctx.Err()
		case <-t.C:
		}
	}
	var p leasePage
	var held time.Duration
	// Stale: the page shows this server's applied state (any server can
	// serve it, and a follower's page is how one sees it lagging).
	meta, err := s.b.Read(ctx, true, func(m *fsm.Machine, at time.Duration) {
		start := time.Now()
		res := m.Page(q, at)
		p.Total, p.Matched, p.More = m.Len(), res.Matched, res.More
		p.Leases = make([]leaseRow, len(res.Leases))
		for i, in := range res.Leases {
			r := leaseRow{Namespace: in.Key.Namespace, Group: in.Key.Group, Name: in.Key.Name, Holder: in.Holder,
				Token: in.Token, LeftMs: (in.Expiry - at).Milliseconds(), HeldMs: (at - in.Start).Milliseconds()}
			if in.Pinned {
				r.PinnedBy = m.PinnedBy(in.Key)
			}
			p.Leases[i] = r
		}
		held = time.Since(start)
	})
	if err != nil {
		return leasePage{}, err
	}
	p.AppliedIndex, p.NowNs, p.ScanMicros = meta.AppliedIndex, int64(meta.Now), held.Microseconds()
	s.nxt = time.Now().Add(dutyRatio * held)
	s.lastQ, s.lastAt, s.lastP = q, time.Now(), p
	return p, nil
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
	HistoryGaps  int       `json:"history_gaps"`
	Recording    bool      `json:"recording"` // false when this server keeps no history
}

func detailOf(ctx context.Context, b server.Backend, h *History, k lease.Key) (leaseDetail, error) {
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
		d.History, d.HistoryGaps = h.Rows(k), h.Gaps()
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
