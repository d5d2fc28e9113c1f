package web

import (
	"encoding/json"
	"net/http"

	"github.com/leasehold/leasehold/server"
)

// Handler serves the HTTP endpoint of one server.
func Handler(b server.Backend, metrics http.Handler) http.Handler {
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
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}
