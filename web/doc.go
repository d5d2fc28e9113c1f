// Package web serves a Leasehold server's HTTP endpoint: health (/healthz),
// readiness (/readyz), Prometheus metrics (/metrics) and the live status page.
package web
