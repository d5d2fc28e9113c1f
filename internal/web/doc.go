// Package web serves a Leasehold server's HTTP endpoint: health (/healthz),
// readiness (/readyz), Prometheus metrics (/metrics), the JSON the status
// page polls (/status.json: this server's view of the cluster; /series.json:
// the last minute of throughput, latency and rejects, per second) and the
// status page itself at /, a self-contained HTML+JS file embedded in the
// binary (no CDN: operators' networks are often closed).
package web
