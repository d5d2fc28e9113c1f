package web

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"time"

	"github.com/leasehold/leasehold/metrics"
	"github.com/leasehold/leasehold/server"
)

//go:embed status.html
var statusPage []byte

// Options configure the HTTP endpoint.
type Options struct {
	Backend server.Backend
	// Metrics serves /metrics (none when nil).
	Metrics http.Handler
	// Series feeds the status page's charts (/series.json); nil serves an
	// empty series.
	Series *metrics.Series
}

// Handler serves the HTTP endpoint of one server.
func Handler(b server.Backend, metrics http.Handler) http.Handler {
	return New(Options{Backend: b, Metrics: metrics})
}

// New serves /healthz, /readyz, /status.json, /series.json, /metrics and
// the status page at /.
func New(o Options) http.Handler {
	b := o.Backend
	mux := http.NewServeMux()
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
