package web

import (
	"time"

	"github.com/leasehold/leasehold/lease"
)

// EventWindow is where the lease pages read a lease's recent events: the
// watch hub's kept window (grpcserver.WatchHub.Recent), newest first.
type EventWindow interface {
	Recent(k lease.Key, visit func(*lease.Event) bool) (first uint64)
}

// History shows each lease's recent events on the lease pages. It is a view
// of the events this server keeps anyway for resuming watchers (the watch
// hub's window, the last 100,000 events by default), read when a page asks.
//
// An earlier History watched every event and kept its own per-lease record;
// that watcher and its index cost 30-35 % of the servers' CPU per claim in a
// claim storm (benchmarked with and without it), which is when an operator
// can least afford it. The view costs nothing on the apply path; what it
// gives up is retention: a lease's older events leave the window as newer
// events of any lease arrive, and the page says from which log index it
// covers. Consecutive extends of one tenure collapse into one row (with a
// count); extends are in the window only while some watcher asks for them
// (renewals are most of what a server applies, and recording them costs
// every renewal).
type History struct {
	src    EventWindow
	perKey int
}

// Row is one line of a lease's history.
type Row struct {
	Kind   string        `json:"kind"` // claimed, extended, revoked, expired, pinned, unpinned
	Holder string        `json:"holder"`
	Token  uint64        `json:"token"`
	Index  uint64        `json:"index"`
	At     time.Duration `json:"at_ns"` // replicated time of the event (the last one, for collapsed extends)
	First  time.Duration `json:"first_ns"`
	Expiry time.Duration `json:"expiry_ns"`
	Count  int           `json:"count"` // events collapsed into this row
}

// NewHistory shows up to perKey rows per lease (default 16) from src.
func NewHistory(src EventWindow, perKey int) *History {
	if perKey <= 0 {
		perKey = 16
	}
	return &History{src: src, perKey: perKey}
}

// Rows returns k's rows still in the window, newest first, and the oldest
// log index the window covers.
func (h *History) Rows(k lease.Key) (rows []Row, from uint64) {
	from = h.src.Recent(k, func(e *lease.Event) bool {
		if n := len(rows); n > 0 && e.Kind == lease.EventExtended {
			// Walking back from the newest: an extend right before the
			// oldest row so far, of the same tenure, is one more of the
			// consecutive extends that row collapses.
			if r := &rows[n-1]; r.Kind == "extended" && r.Token == e.Token {
				r.First = e.Now
				r.Count++
				return true
			}
		}
		if len(rows) == h.perKey {
			return false
		}
		rows = append(rows, Row{Kind: e.Kind.String(), Holder: e.Holder, Token: e.Token, Index: e.Index,
			At: e.Now, First: e.Now, Expiry: e.Expiry, Count: 1})
		return true
	})
	return rows, from
}
