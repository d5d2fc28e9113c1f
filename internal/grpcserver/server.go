package grpcserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// Defaults for Options' zero values.
const (
	DefaultMaxBulkOps      = 10_000
	DefaultMaxMsgBytes     = 16 << 20 // 10,000 ops of maximal names fit
	DefaultListPageSize    = 1_000
	DefaultMaxListPageSize = 10_000
)

// Options configure a Server.
type Options struct {
	// Tokens maps bearer tokens to roles. When empty the server is open:
	// every caller is admin. Only run open on loopback.
	Tokens map[string]Role
	// TLS, when set, serves the API over TLS (see TLSConfig). Set ClientCAs
	// and ClientAuth in it for mutual TLS.
	TLS *tls.Config
	// MaxBulkOps caps the ops of one Bulk request (DefaultMaxBulkOps).
	MaxBulkOps int
	// MaxMsgBytes caps a received message (DefaultMaxMsgBytes).
	MaxMsgBytes int
	// DefaultPageSize and MaxPageSize bound List pages.
	DefaultPageSize int
	MaxPageSize     int
	// MaxWatchers and MaxWatchersPerCaller bound the open Watch and
	// WaitUntilReleased streams of this server, and of one caller (bearer
	// token and host) on it (DefaultMaxWatchers, DefaultMaxWatchersPerCaller).
	// A stream over either is refused with CodeOverloaded.
	MaxWatchers          int
	MaxWatchersPerCaller int
	// MaxCalls caps the unary Leasehold calls in progress on this server
	// (DefaultMaxCalls; below zero: no cap). A call over it is refused
	// with CodeOverloaded and a retry-after before it is read. Status,
	// admin calls and streams are not counted (streams have MaxWatchers).
	MaxCalls int
	// OnCallRefused, when set, is told of every call refused over
	// MaxCalls (its full method name and the retry-after given). It runs in
	// the connection's reader: it must not block.
	OnCallRefused func(method string, retryAfter time.Duration)
	// Logger logs panics and internal errors (slog.Default()).
	Logger *slog.Logger
	// GRPCOptions are appended to the server's own options.
	GRPCOptions []grpc.ServerOption
}

// Server is the leasehold.v1 gRPC service over a Backend.
type Server struct {
	pb.UnimplementedLeaseholdServer
	b    Backend
	opts Options
	auth *auth
	log  *slog.Logger
	grpc *grpc.Server

	idOnce sync.Once
	id     string

	watches watchLimits
}

// New builds a server over b. Call Serve to accept connections.
func New(b Backend, opts Options) (*Server, error) {
	if opts.MaxBulkOps <= 0 {
		opts.MaxBulkOps = DefaultMaxBulkOps
	}
	if opts.MaxMsgBytes <= 0 {
		opts.MaxMsgBytes = DefaultMaxMsgBytes
	}
	if opts.DefaultPageSize <= 0 {
		opts.DefaultPageSize = DefaultListPageSize
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = DefaultMaxListPageSize
	}
	opts.DefaultPageSize = min(opts.DefaultPageSize, opts.MaxPageSize)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxWatchers <= 0 {
		opts.MaxWatchers = DefaultMaxWatchers
	}
	if opts.MaxWatchersPerCaller <= 0 {
		opts.MaxWatchersPerCaller = DefaultMaxWatchersPerCaller
	}
	a, err := newAuth(opts.Tokens)
	if err != nil {
		return nil, err
	}
	s := &Server{b: b, opts: opts, auth: a, log: opts.Logger,
		watches: watchLimits{maxTotal: opts.MaxWatchers, maxPerCaller: opts.MaxWatchersPerCaller, perCaller: make(map[callerKey]int)}}
	unary := []grpc.UnaryServerInterceptor{s.recoverUnary}
	stream := []grpc.StreamServerInterceptor{s.recoverStream}
	if a != nil {
		unary = append(unary, a.unary)
		stream = append(stream, a.stream)
	}
	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxMsgBytes),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		// Clients ping idle connections to notice dead servers; allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Calls run on long-lived workers while one is free: a new
		// goroutine per call starts with a small stack and grows it (copying
		// it each time) while it decodes the request; that was 7% of a
		// 3-node process's CPU at 100 unary callers (docs/performance.md,
		// section 13). A worker keeps its grown stack; gRPC replaces it every
		// 65,536 calls, so a rare deep call does not pin a large stack.
		grpc.NumStreamWorkers(streamWorkers),
	}
	if l := newCallLimit(opts.MaxCalls, opts.OnCallRefused, time.Now); l != nil {
		gopts = append(gopts, grpc.InTapHandle(l.tap))
	}
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(append(gopts, opts.GRPCOptions...)...)
	pb.RegisterLeaseholdServer(s.grpc, s)
	return s, nil
}

// streamWorkers is how many calls can run on a reused goroutine at once:
// about the unary calls a busy server has waiting on one Raft round trip.
// Calls beyond it get a goroutine of their own, as without workers. Each
// idle worker costs its stack (a few KB).
const streamWorkers = 256

// Open reports whether the server runs without authentication.
func (s *Server) Open() bool { return s.auth == nil }

// Serve accepts connections on lis until Stop or GracefulStop.
func (s *Server) Serve(lis net.Listener) error { return s.grpc.Serve(lis) }

// GracefulStop stops accepting RPCs and waits for running ones (including
// watches, so cancel those first or use Stop).
func (s *Server) GracefulStop() { s.grpc.GracefulStop() }

// Stop closes every connection and cancels every running RPC.
func (s *Server) Stop() { s.grpc.Stop() }

// GRPC returns the underlying gRPC server, to register more services on it.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(srv, ss)
}

// recovered turns a handler panic into CodeUnknown so one bad request does
// not take the node (and its Raft membership) down.
func (s *Server) recovered(method string, err *error) {
	if p := recover(); p != nil {
		s.log.Error("panic in RPC handler", "method", method, "panic", p, "stack", string(debug.Stack()))
		*err = wire.StatusError(lease.Errorf(lease.CodeUnknown, "internal error"))
	}
}

// serverID is this node's ID, read once: it never changes.
func (s *Server) serverID() string {
	s.idOnce.Do(func() { s.id = s.b.Status().ID })
	return s.id
}

func (s *Server) limits() lease.Limits {
	if l, ok := s.b.(Limiter); ok {
		return l.Limits()
	}
	return lease.DefaultLimits
}

func errorf(c lease.Code, format string, args ...any) error {
	return wire.StatusError(lease.Errorf(c, format, args...))
}

func statusErr(err error) error { return wire.StatusError(err) }

// Check that the service implements the whole API.
var _ pb.LeaseholdServer = (*Server)(nil)
