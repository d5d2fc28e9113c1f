// Package metrics holds one server's Prometheus collectors, on a registry of
// its own (so several servers in one process, as in tests and `leasehold
// dev`, do not collide): admission queue hooks, a gRPC interceptor for op
// latency by op and result, lease event counters, Raft state gauges read at
// scrape time, leader changes, and a small per-second rolling series the
// status page charts.
package metrics
