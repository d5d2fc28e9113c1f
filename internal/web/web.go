package web

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/metrics"
)

//go:embed status.html
var statusPage []byte

//go:embed lease.html
var leasePageHTML string

var leaseTmpl = template.Must(template.New("lease").Parse(leasePageHTML))

// Options configure the HTTP endpoint.
type Options struct {
	Backend grpcserver.Backend
	// Metrics serves /metrics (none when nil).
	Metrics http.Handler
	// Series feeds the status page's charts (/series.json); nil serves an
	// empty series.
	Series *metrics.Series
	// History, when set, gives the lease pages their recent history (read
	// from the watch hub's window); without it they show the lease as it
	// is now.
	History *History
}

// Handler serves the HTTP endpoint of one server.
func Handler(b grpcserver.Backend, metrics http.Handler) http.Handler {
	return New(Options{Backend: b, Metrics: metrics})
}

// New serves /healthz, /readyz, /status.json, /series.json, /metrics, the
// held leases (/leases.json: one page, filtered), one lease with its recent
// history (/lease.json, and the page /lease), and the status page at /.
func New(o Options) http.Handler {
	b := o.Backend
	mux := http.NewServeMux()
	sc := &scanner{b: b}
	mux.HandleFunc("GET /leases.json", sc.serveLeases)
	mux.HandleFunc("GET /lease.json", func(w http.ResponseWriter, r *http.Request) {
		d, err := detailOf(r.Context(), b, o.History, keyOf(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	mux.HandleFunc("GET /lease", func(w http.ResponseWriter, r *http.Request) {
		d, err := detailOf(r.Context(), b, o.History, keyOf(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		leaseTmpl.Execute(w, leaseView{D: d, wall: time.Now(), PerKey: o.History.perKeyOrZero()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	// Ready when this node knows a leader: it can serve or redirect writes.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := b.Status()
		if st.LeaderID == "" {
			http.Error(w, "no leader known", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.Status())
	})
	mux.HandleFunc("GET /series.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		pts := []metrics.Point{}
		if o.Series != nil {
			pts = o.Series.Last(time.Now(), 60)
		}
		json.NewEncoder(w).Encode(pts)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(statusPage)
	})
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	return mux
}

// leaseView renders times on the lease page relative to the replicated time
// the page was read at.
type leaseView struct {
	D      leaseDetail
	PerKey int
	wall   time.Time
}

func (v leaseView) Dur(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
}

// Ago is how long before the page's replicated time at was.
func (v leaseView) Ago(at time.Duration) string {
	d := time.Duration(v.D.NowNs) - at
	if d < 0 {
		return "in " + (-d).Round(time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String() + " ago"
}

// Wall estimates the wall-clock time of replicated time at: replicated time
// runs at the rate of wall time, so it is now minus the distance.
func (v leaseView) Wall(at time.Duration) string {
	return v.wall.Add(at - time.Duration(v.D.NowNs)).UTC().Format("15:04:05.000 UTC")
}

// Rel is b relative to a ("+12s").
func (v leaseView) Rel(b, a time.Duration) string {
	return fmt.Sprintf("+%v", (b - a).Round(time.Millisecond))
}

func (v leaseView) Secs(ns int64) string { return fmt.Sprintf("%.3f", time.Duration(ns).Seconds()) }

func (h *History) perKeyOrZero() int {
	if h == nil {
		return 0
	}
	return h.perKey
}
