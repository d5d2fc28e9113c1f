// Package server assembles one Leasehold server: the Raft replica
// (raftnode), the write path (node: admission queue, watch hub), the gRPC API
// (server) and the HTTP endpoint (web). `leasehold server` runs one; package
// cluster runs several in one process.
package server
