package hostile

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
	"github.com/leasehold/leasehold/lease"
)

// raftRefuses dials the Raft port with cfg and reports nil when the server
// refused: the handshake fails, or (TLS 1.3) the first read reports the
// refusal. A connection the server keeps open is an error.
func raftRefuses(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err = conn.Read(make([]byte, 1)); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return err // still open: accepted
		}
		return nil
	}
	return nil // the server sent something: it did not keep us as a peer either way
}

// TestCertificateCases: a one-node cluster with mutual TLS between servers
// (server CA) and on the API (client CA). Every certificate that is not a
// member server's own is refused by the Raft port; the API refuses a caller
// without a client certificate; a client refuses a "server" that presents
// the client certificate, before sending it any token. Nothing is written
// and the server keeps serving.
func TestCertificateCases(t *testing.T) {
	serverCA, clientCA, otherCA := testutil.NewCA(t, "server CA"), testutil.NewCA(t, "client CA"), testutil.NewCA(t, "other CA")
	apiTLS := &tls.Config{Certificates: []tls.Certificate{serverCA.Issue(testutil.ServerCert, "api")}, ClientCAs: clientCA.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	c, err := devcluster.Start(context.Background(), devcluster.Options{Dir: t.TempDir(), Size: 1,
		Raft: func(cfg *replica.Config) {
			testutil.FastRaft(cfg)
			cfg.TLS = replica.PeerTLSConfig(serverCA.Issue(testutil.ServerCert, cfg.ID), serverCA.Pool)
		},
		Server: grpcserver.Options{TLS: apiTLS, Tokens: map[string]grpcserver.Role{agentToken: grpcserver.RoleAgent, adminToken: grpcserver.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]

	for name, certs := range map[string][]tls.Certificate{
		"no certificate":                                   nil,
		"the API client certificate":                       {clientCA.Issue(testutil.ClientCert, "cli")},
		"a client certificate signed by the server CA":     {serverCA.Issue(testutil.ClientCert, "cli")},
		"the old client.pem (server CA, both usages)":      {serverCA.Issue(testutil.OldClientCert, "client")},
		"a server certificate from another CA":             {otherCA.Issue(testutil.ServerCert, m.ID)},
		"a server certificate of a server not a member":    {serverCA.Issue(testutil.ServerCert, "node9")},
		"a client-only certificate naming the member's CN": {serverCA.Issue(testutil.ClientCert, m.ID)},
	} {
		cfg := &tls.Config{Certificates: certs, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		if err := raftRefuses(m.RaftAddr, cfg); err != nil {
			t.Errorf("raft port accepted %s: %v", name, err)
		}
	}
	// Not TLS at all: garbage on the Raft port is dropped.
	if conn, err := net.DialTimeout("tcp", m.RaftAddr, 5*time.Second); err == nil {
		conn.Write(bytes.Repeat([]byte{0x01, 0xff}, 512))
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := conn.Read(make([]byte, 1))
		conn.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("raft port kept a plain-TCP connection that sent garbage")
		}
	}

	// The API without a client certificate.
	anon := client.Config{Endpoints: []string{m.ClientAddr}, Token: adminToken, MaxAttempts: 1,
		TLS: &tls.Config{RootCAs: serverCA.Pool, MinVersion: tls.VersionTLS12}}
	if cl, err := client.New(anon); err == nil {
		_, err := cl.Claim(ctx, lease.Key{Namespace: "ns", Group: "g", Name: "anon"}, "h", time.Minute)
		cl.Close()
		if err == nil {
			t.Error("API accepted a caller without a client certificate")
		}
	}

	// A "server" presenting the client certificate, to collect tokens.
	fake, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{clientCA.Issue(testutil.OldClientCert, "client")}})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := fake.Accept()
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 4096)
			n, _ := conn.Read(b)
			got.Write(b[:n])
			conn.Close()
		}
	}()
	// The client trusts the CA that signed the fake's certificate: the
	// certificate's usage alone must stop it.
	victim := client.Config{Endpoints: []string{fake.Addr().String()}, Token: adminToken, MaxAttempts: 1,
		TLS: &tls.Config{RootCAs: clientCA.Pool, Certificates: []tls.Certificate{clientCA.Issue(testutil.ClientCert, "cli")}, MinVersion: tls.VersionTLS12}}
	if cl, err := client.New(victim); err == nil {
		_, err := cl.Claim(ctx, lease.Key{Namespace: "ns", Group: "g", Name: "victim"}, "h", time.Minute)
		cl.Close()
		if err == nil {
			t.Error("client talked to a server presenting a client certificate")
		}
	}
	fake.Close()
	wg.Wait()
	if strings.Contains(got.String(), adminToken) {
		t.Error("the token reached a server presenting a client certificate")
	}

	// Nothing was written, and the server still serves a proper client.
	creds := credentials.NewTLS(&tls.Config{RootCAs: serverCA.Pool, Certificates: []tls.Certificate{clientCA.Issue(testutil.ClientCert, "cli")}, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(m.ClientAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	assertNothingWritten(t, conn)
	cctx, ccancel := context.WithTimeout(withToken(context.Background(), agentToken), 5*time.Second)
	defer ccancel()
	if _, err := pb.NewLeaseholdClient(conn).Claim(cctx, &pb.ClaimRequest{Key: key("after"), Holder: "h", DurationMs: 60000}); err != nil {
		t.Fatalf("claim after the hostile connections: %v", err)
	}
}
