package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
)

// testCA is a CA and a function issuing its server certificates.
func testCA(t *testing.T) (*x509.CertPool, func(name string) tls.Certificate) {
	ca := testutil.NewCA(t, "test CA")
	return ca.Pool, func(name string) tls.Certificate { return ca.Issue(testutil.ServerCert, name) }
}

func TestTLSBetweenServersAndOnTheAPI(t *testing.T) {
	pool, issue := testCA(t)
	serverCert := issue("server")
	apiTLS := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	c := startCluster(t, devcluster.Options{
		Raft: func(cfg *replica.Config) {
			fastRaft(cfg)
			cfg.TLS = replica.PeerTLSConfig(issue(cfg.ID), pool)
		},
		Server: grpcserver.Options{TLS: apiTLS},
	})
	var addrs []string
	for _, m := range c.Members {
		addrs = append(addrs, m.ClientAddr)
	}
	clientTLS := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{issue("cli")}, MinVersion: tls.VersionTLS12}
	cl := newClient(t, client.Config{TLS: clientTLS}, addrs...)
	k := mustKey("app/tls/one")
	if _, err := cl.Claim(ctxT(t), k, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Replication ran over TLS: every server applied the claim.
	for _, m := range c.Members {
		waitFor(t, 5*time.Second, m.ID+" applies over TLS", func() bool { return m.Raft().State().Leases == 1 })
	}
	// A client without a certificate is refused by the API.
	bad := newClient(t, client.Config{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxAttempts: 1}, addrs[0])
	if _, err := bad.Claim(ctxT(t), k, "h", time.Minute); err == nil {
		t.Fatal("claim without a client certificate succeeded")
	}
	// A Raft peer with a certificate from another CA is refused.
	_, otherIssue := testCA(t)
	conn, err := tls.Dial("tcp", c.Members[0].RaftAddr, replica.PeerTLSConfig(otherIssue("intruder"), pool))
	if err == nil {
		// TLS 1.3 reports the server's refusal on the first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("raft transport accepted a certificate from another CA")
	}
}
