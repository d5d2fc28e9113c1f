package grpcserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

var key = lease.Key{Namespace: "ns", Group: "g", Name: "app"}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	cfg.MaxAttempts = 1
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestAuth(t *testing.T) {
	c := servertest.NewCluster(1)
	addrs := servertest.Start(t, c, grpcserver.Options{Tokens: map[string]grpcserver.Role{"agent-secret": grpcserver.RoleAgent, "admin-secret": grpcserver.RoleAdmin}})
	ctx := ctxT(t)
	anon := newClient(t, client.Config{Endpoints: addrs})
	wrong := newClient(t, client.Config{Endpoints: addrs, Token: "guess"})
	agent := newClient(t, client.Config{Endpoints: addrs, Token: "agent-secret"})
	admin := newClient(t, client.Config{Endpoints: addrs, Token: "admin-secret"})

	for _, cl := range []*client.Client{anon, wrong} {
		if _, err := cl.Claim(ctx, key, "h", time.Minute); !errors.Is(err, lease.ErrUnauthenticated) {
			t.Fatalf("claim: %v", err)
		}
		if _, _, err := cl.Get(ctx, key); !errors.Is(err, lease.ErrUnauthenticated) {
			t.Fatalf("get: %v", err)
		}
		if _, err := cl.Watch(ctx, client.WatchOptions{}); !errors.Is(err, lease.ErrUnauthenticated) {
			t.Fatalf("watch: %v", err)
		}
	}
	if _, err := agent.Pin(ctx, key, "e"); !errors.Is(err, lease.ErrPermissionDenied) {
		t.Fatalf("agent pin: %v", err)
	}
	if _, err := agent.Unpin(ctx, key, "e"); !errors.Is(err, lease.ErrPermissionDenied) {
		t.Fatalf("agent unpin: %v", err)
	}
	if _, err := agent.Bulk(ctx, []lease.Command{
		{Op: lease.OpClaim, Key: key, Holder: "h", Duration: time.Minute},
		{Op: lease.OpPin, Key: key, Holder: "e"},
	}); !errors.Is(err, lease.ErrPermissionDenied) {
		t.Fatalf("agent bulk pin: %v", err)
	}
	if c.Index() != 0 {
		t.Fatalf("rejected calls wrote %d entries", c.Index())
	}
	if _, err := agent.Claim(ctx, key, "h", time.Minute); err != nil {
		t.Fatalf("agent claim: %v", err)
	}
	if _, err := agent.Status(ctx); err != nil {
		t.Fatalf("agent status: %v", err)
	}
	if _, err := admin.Pin(ctx, key, "e"); err != nil {
		t.Fatalf("admin pin: %v", err)
	}
}

// selfSigned makes a certificate for 127.0.0.1, valid for an hour.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leasehold-test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	c := servertest.NewCluster(1)
	addrs := servertest.Start(t, c, grpcserver.Options{
		TLS:    &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Tokens: map[string]grpcserver.Role{"tok": grpcserver.RoleAgent},
	})
	ctx := ctxT(t)
	good := newClient(t, client.Config{Endpoints: addrs, Token: "tok", TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}})
	if r, err := good.Claim(ctx, key, "h", time.Minute); err != nil || r.Outcome != lease.OutcomeGranted {
		t.Fatalf("claim over TLS: %+v %v", r, err)
	}
	plain := newClient(t, client.Config{Endpoints: addrs, Token: "tok"})
	if _, err := plain.Claim(ctx, key, "h", time.Minute); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("plaintext to TLS server: %v", err)
	}
	untrusted := newClient(t, client.Config{Endpoints: addrs, Token: "tok", TLS: &tls.Config{}})
	if _, err := untrusted.Claim(ctx, key, "h", time.Minute); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("untrusted server cert: %v", err)
	}
	if c.Index() != 1 {
		t.Fatalf("index %d", c.Index())
	}
}

// backendOnly hides the fake's Watcher and Limiter.
type backendOnly struct{ grpcserver.Backend }

func TestWatchUnsupported(t *testing.T) {
	c := servertest.NewCluster(1)
	s, err := grpcserver.New(backendOnly{c.Node("n1")}, grpcserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(lis); close(done) }()
	defer func() { s.Stop(); <-done }()
	cl := newClient(t, client.Config{Endpoints: []string{lis.Addr().String()}})
	if _, err := cl.Watch(ctxT(t), client.WatchOptions{}); !errors.Is(err, client.ErrWatchUnsupported) {
		t.Fatalf("watch: %v", err)
	}
	// Limits default to lease.DefaultLimits without a Limiter.
	if _, err := cl.Claim(ctxT(t), key, "h", lease.DefaultLimits.MaxDuration+time.Second); !errors.Is(err, lease.ErrInvalidArgument) {
		t.Fatalf("claim: %v", err)
	}
}

// TestRawStatusDetails checks the wire format a non-Go client sees.
func TestRawStatusDetails(t *testing.T) {
	c := servertest.NewCluster(2)
	addrs := servertest.Start(t, c, grpcserver.Options{})
	conn, err := grpc.NewClient(addrs[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := pb.NewLeaseholdClient(conn)
	_, err = api.Claim(ctxT(t), &pb.ClaimRequest{Key: &pb.Key{Namespace: "ns", Group: "g", Name: "a"}, Holder: "h", DurationMs: 5000})
	st := status.Convert(err)
	if st.Code() != codes.Aborted || len(st.Details()) == 0 {
		t.Fatalf("status %v", st)
	}
	if _, err := api.Bulk(ctxT(t), &pb.BulkRequest{Ops: make([]*pb.Op, grpcserver.DefaultMaxBulkOps+1)}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("oversized bulk: %v", err)
	}
	if _, err := api.Get(ctxT(t), &pb.GetRequest{Key: &pb.Key{Namespace: "ns", Group: "g", Name: "a"}, Stale: true}); err != nil {
		t.Fatalf("stale read on follower: %v", err)
	}
}
