package server

import (
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/metrics"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/web"
)

// Config configures one server.
type Config struct {
	// Raft configures the replica. Its ClientAddr and HTTPAddr are the
	// addresses to listen on; port 0 picks a free port, and the real
	// addresses are what gets registered in the member directory.
	Raft   replica.Config
	Node   backend.Options
	Server grpcserver.Options
	Logger *slog.Logger
}

// Server is one running Leasehold server.
type Server struct {
	Raft *replica.Node
	Node *backend.Node
	API  *grpcserver.Server
	// Metrics are this server's collectors, on a registry of its own.
	Metrics *metrics.Metrics

	clientLis, httpLis net.Listener
	http               *http.Server
	log                *slog.Logger
	done               chan struct{}
}

// Start listens on the client and HTTP addresses, opens the replica and
// serves. It returns once everything listens; the cluster may not have a
// leader yet.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Raft.Logger == nil {
		cfg.Raft.Logger = cfg.Logger
	}
	s := &Server{log: cfg.Logger.With("node", cfg.Raft.ID), done: make(chan struct{})}
	var err error
	if s.clientLis, err = net.Listen("tcp", cfg.Raft.ClientAddr); err != nil {
		return nil, err
	}
	if s.httpLis, err = net.Listen("tcp", cfg.Raft.HTTPAddr); err != nil {
		s.clientLis.Close()
		return nil, err
	}
	cfg.Raft.ClientAddr, cfg.Raft.HTTPAddr = s.clientLis.Addr().String(), s.httpLis.Addr().String()
	s.Metrics = metrics.New(func() grpcserver.Status { return s.Node.Status() })
	if h := cfg.Node.Hooks; h.Depth == nil && h.Wait == nil && h.Entry == nil && h.Committed == nil && h.Rejected == nil {
		cfg.Node.Hooks = s.Metrics.Hooks()
	}
	if cfg.Node.Logger == nil {
		cfg.Node.Logger = s.log
	}
	// Time every log append (one fsync) for leasehold_fsync_seconds.
	if wrap := cfg.Raft.WrapLogStore; wrap != nil {
		cfg.Raft.WrapLogStore = func(l raft.LogStore) raft.LogStore { return s.Metrics.WrapLogStore(wrap(l)) }
	} else {
		cfg.Raft.WrapLogStore = s.Metrics.WrapLogStore
	}
	s.Metrics.AddCertificates("api", cfg.Server.TLS)
	s.Metrics.AddCertificates("raft", cfg.Raft.TLS)
	if cfg.Server.OnCallRefused == nil {
		cfg.Server.OnCallRefused = s.Metrics.CallRefused
	}
	cfg.Server.GRPCOptions = append(cfg.Server.GRPCOptions[:len(cfg.Server.GRPCOptions):len(cfg.Server.GRPCOptions)],
		grpc.ChainUnaryInterceptor(s.Metrics.UnaryInterceptor()))
	if s.Raft, err = replica.Open(cfg.Raft); err != nil {
		s.closeListeners()
		return nil, err
	}
	s.Metrics.CountEvents(s.Raft.EventCounts)
	// A server keeps its watch window whether or not anyone watches: its
	// status page's lease history and resuming watches read it.
	cfg.Node.KeepWindow = true
	if s.Node, err = backend.New(s.Raft, cfg.Node); err != nil {
		s.Raft.Close()
		s.closeListeners()
		return nil, err
	}
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = cfg.Logger
	}
	if s.API, err = grpcserver.New(s.Node, cfg.Server); err != nil {
		s.Node.Close()
		s.Raft.Close()
		s.closeListeners()
		return nil, err
	}
	grpcserver.RegisterAdmin(s.API, s.Node)
	s.Metrics.WatchLeader(s.Raft.Raft())
	// The status page's per-lease history: a view of the watch hub's window,
	// read when a page asks (no watcher, nothing on the apply path).
	hist := web.NewHistory(s.Node, 0)
	s.http = &http.Server{Handler: web.New(web.Options{Backend: s.Node, Metrics: s.Metrics.Handler(), Series: s.Metrics.Series, History: hist})}
	go s.API.Serve(s.clientLis)
	go func() {
		defer close(s.done)
		if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("http server stopped", "err", err)
		}
	}()
	return s, nil
}

// ClientAddr is the gRPC address the server listens on.
func (s *Server) ClientAddr() string { return s.clientLis.Addr().String() }

// HTTPAddr is the HTTP address the server listens on.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

func (s *Server) closeListeners() {
	s.clientLis.Close()
	s.httpLis.Close()
}

// Close stops serving and shuts the replica down (handing leadership over
// first when this server leads). In-flight calls are cut off.
func (s *Server) Close() error {
	s.API.Stop()
	s.http.Close()
	<-s.done
	s.Node.Close()
	err := s.Raft.Close()
	s.Metrics.Close()
	return err
}
