// Package backend assembles one Leasehold server's write and read paths: the
// Raft replica (package raftnode) behind the admission queue, exposed to the
// gRPC service as a server.Backend.
package backend
