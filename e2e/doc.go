// Package e2e holds end-to-end tests and benchmarks of Leasehold on real
// in-process 3-node clusters (package cluster: Raft over TCP on loopback,
// the bbolt log store with fsync, the gRPC API) driven through the Go client.
//
// The tests prove over the real stack what the unit tests of server, client
// and admission prove against fakes: round trips, leader routing by hint,
// every call ending in a result or a typed *lease.Error while the leader is
// killed, Unavailable without a reachable server, cancellation withdrawing a
// queued op on the server, authentication writing nothing, watch order, and
// a claim storm that cannot make held leases expire. BenchmarkSaturation
// compares the admission queue with one op per entry (node.Naive).
//
// The package has no non-test code; see docs/testing.md for what each test
// shows and the measured numbers.
package e2e
