// Package grpcserver is Leasehold's gRPC API (leasehold.v1) over a Backend.
//
// Every node serves the whole API. Writes and linearizable reads are only
// served by the Raft leader: on a follower the backend answers
// lease.CodeNotLeader with the leader's ID and client address, which the
// server passes on in the error details so a client can go straight there.
// Stale reads are served by any node.
//
// The server validates every input before it reaches the backend (nothing
// invalid is ever proposed), authenticates every RPC by bearer token and role
// when tokens are configured, maps every error to a gRPC status carrying the
// full *lease.Error (see package api/wire), and passes the caller's context
// to the backend so a cancelled RPC withdraws an op not yet proposed. Per-op
// failures inside Bulk are per-result errors, not RPC failures.
//
// Package servertest has an in-memory Backend and cluster for tests.
package grpcserver
