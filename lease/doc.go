// Package lease holds Leasehold's domain types: lease keys, the commands that
// change leases, their results, the validation rules for outside input, and
// the one error taxonomy used end to end (state machine, admission queue,
// gRPC API, Go client, CLI exit codes).
//
// Time in Leasehold is replicated logical time: a time.Duration since the
// cluster's epoch, advanced only by the Raft leader by its own measured
// monotonic elapsed time. A lease held from start for duration d expires when
// start+d < now (strictly).
package lease
