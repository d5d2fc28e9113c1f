// Package devcluster runs a Leasehold cluster of several servers inside one
// process, each with its own data directory, Raft transport, gRPC API and
// HTTP endpoint on loopback. `leasehold dev` runs one on fixed ports; tests,
// fault injection and the benchmark run them on free ports (port 0).
package devcluster
