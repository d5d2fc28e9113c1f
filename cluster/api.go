package cluster

import (
	"errors"
	"net"
	"net/http"

	"github.com/leasehold/leasehold/server"
	"github.com/leasehold/leasehold/web"
)

// api is one member's client-facing listeners and servers.
type api struct {
	clientLis, httpLis net.Listener
	grpc               *server.Server
	http               *http.Server
}

// listenAPI binds the member's client and HTTP addresses (resolving port 0
// to a real port, kept across restarts) before Raft starts, so the member
// directory holds real addresses.
func (c *Cluster) listenAPI(m *Member) (*api, error) {
	cl, err := net.Listen("tcp", m.ClientAddr)
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", m.HTTPAddr)
	if err != nil {
		cl.Close()
		return nil, err
	}
	m.ClientAddr, m.HTTPAddr = cl.Addr().String(), hl.Addr().String()
	return &api{clientLis: cl, httpLis: hl}, nil
}

// serve starts the member's gRPC and HTTP servers on its node.
func (a *api) serve(m *Member, opts server.Options) error {
	s, err := server.New(m.node, opts)
	if err != nil {
		return err
	}
	a.grpc = s
	a.http = &http.Server{Handler: web.Handler(m.node, nil)}
	go s.Serve(a.clientLis)
	go func() {
		if err := a.http.Serve(a.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Warn("http server stopped", "err", err)
		}
	}()
	return nil
}

func (a *api) close() {
	if a.grpc != nil {
		a.grpc.Stop()
	} else {
		a.clientLis.Close()
	}
	if a.http != nil {
		a.http.Close()
	} else {
		a.httpLis.Close()
	}
}
