package grpcserver

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/internal/pemfile"
	"github.com/leasehold/leasehold/lease"
)

// Role is what a token may do.
type Role uint8

const (
	// RoleNone is no role: an unknown or missing token.
	RoleNone Role = iota
	// RoleAgent may claim, extend, revoke, read, watch and read status.
	RoleAgent
	// RoleAdmin may do everything, including pin, unpin and cluster operations.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleAgent:
		return "agent"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole parses "agent" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "agent":
		return RoleAgent, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want agent or admin)", s)
}

// agentMethods are the RPCs an agent may call. Everything else, including
// methods added later (cluster operations), needs admin: a new method is
// closed until someone opens it here.
var agentMethods = map[string]bool{
	pb.Leasehold_Claim_FullMethodName:             true,
	pb.Leasehold_Extend_FullMethodName:            true,
	pb.Leasehold_Revoke_FullMethodName:            true,
	pb.Leasehold_Bulk_FullMethodName:              true, // pin/unpin ops inside are checked by the handler
	pb.Leasehold_Renew_FullMethodName:             true, // extends only
	pb.Leasehold_Get_FullMethodName:               true,
	pb.Leasehold_List_FullMethodName:              true,
	pb.Leasehold_Pinned_FullMethodName:            true,
	pb.Leasehold_Watch_FullMethodName:             true,
	pb.Leasehold_WaitUntilReleased_FullMethodName: true,
	pb.Leasehold_Status_FullMethodName:            true,
}

type roleKey struct{}

// roleOf returns the caller's role; an open server treats everyone as admin.
func roleOf(ctx context.Context) Role {
	if r, ok := ctx.Value(roleKey{}).(Role); ok {
		return r
	}
	return RoleAdmin
}

// auth holds tokens by their SHA-256 so a lookup's timing says nothing
// useful about the tokens themselves.
type auth struct {
	tokens map[[32]byte]Role
}

func newAuth(tokens map[string]Role) (*auth, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	a := &auth{tokens: make(map[[32]byte]Role, len(tokens))}
	for tok, role := range tokens {
		if tok == "" || (role != RoleAgent && role != RoleAdmin) {
			return nil, fmt.Errorf("server: bad token entry (empty token or role %v)", role)
		}
		a.tokens[sha256.Sum256([]byte(tok))] = role
	}
	return a, nil
}

// check authenticates ctx's bearer token and authorises method.
func (a *auth) check(ctx context.Context, method string) (context.Context, error) {
	if a == nil {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return nil, wire.StatusError(lease.Errorf(lease.CodeUnauthenticated, "missing bearer token"))
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, wire.StatusError(lease.Errorf(lease.CodeUnauthenticated, "authorization is not a bearer token"))
	}
	role := a.tokens[sha256.Sum256([]byte(tok))]
	if role == RoleNone {
		return nil, wire.StatusError(lease.Errorf(lease.CodeUnauthenticated, "unknown token"))
	}
	if role != RoleAdmin && !agentMethods[method] {
		return nil, wire.StatusError(lease.Errorf(lease.CodePermissionDenied, "role %s may not call %s", role, method))
	}
	return context.WithValue(ctx, roleKey{}, role), nil
}

func (a *auth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s authedStream) Context() context.Context { return s.ctx }

func (a *auth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, authedStream{ss, ctx})
}

// TLSConfig builds a server TLS configuration from PEM files. With a client
// CA file, clients must present a certificate signed by it (mutual TLS).
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: load TLS key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pool, err := pemfile.CertPool(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server: client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
