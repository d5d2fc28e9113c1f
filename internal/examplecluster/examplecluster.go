// Package examplecluster starts a throwaway Leasehold API for the runnable
// examples of the public packages (client, manager, election), so that
// `go test` runs them in milliseconds with no Raft, disk or ports to
// configure. It serves the real gRPC API over three in-memory nodes that
// share one state machine (server/servertest); a program of yours would
// instead pass the client addresses of real servers, or of `leasehold dev`.
package examplecluster

import (
	"log"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
)

// Start serves the API on three loopback ports and returns their addresses
// and a function that stops them. It exits the program if it cannot listen.
func Start() (endpoints []string, stop func()) {
	addrs, stop, err := servertest.Serve(servertest.NewCluster(3), grpcserver.Options{})
	if err != nil {
		log.Fatal("examplecluster: ", err)
	}
	return addrs, stop
}
