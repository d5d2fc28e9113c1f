// Package hostile holds tests only: malformed and hostile requests sent over
// gRPC to a real Leasehold server (a one-node cluster with Raft, the
// admission queue and auth), each of which must be answered with a clear
// error while nothing is written, and the authentication and role check of
// every RPC method the server registers, found by walking its service
// descriptors so that a new method without a rule here fails the test.
// Certificates that are not a member server's own are refused by the Raft
// port (certs_test.go), and `leasehold server` refuses to run open beyond
// loopback (open_server_test.go).
package hostile
