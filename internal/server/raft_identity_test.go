package server_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/server"
	"github.com/leasehold/leasehold/internal/testutil"
)

// refused reports whether a TLS connection to addr with cfg is refused: TLS
// 1.3 reports the server's refusal of our certificate on the first read.
func refused(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil // the server kept the connection: accepted
	}
	return err
}

// A Raft peer must prove with its certificate that it is a server of the
// cluster, and which one. The CLI's certificate, even one the cluster CA
// signed with server usage (what `leasehold certs` used to issue), must not
// open the Raft port, and a server holding one must never receive the log.
func TestRaftRefusesCertificatesThatAreNotThePeersServerCertificate(t *testing.T) {
	ca := testutil.NewCA(t, "identity CA")
	pool, issue := ca.Pool, ca.Issue
	dir := t.TempDir()
	withCert := func(cert tls.Certificate) func(*server.Config) {
		return func(c *server.Config) { c.Raft.TLS = replica.PeerTLSConfig(cert, pool) }
	}
	s1 := startOne(t, "s1", dir, withCert(issue(testutil.ServerCert, "s1")))
	defer s1.Close()
	bootstrapAlone(t, s1)

	// Raw dials to the Raft port: only a server certificate is admitted.
	for name, cert := range map[string]tls.Certificate{
		"the old client.pem (CA-signed, ServerAuth+ClientAuth)": issue(testutil.OldClientCert, "client"),
		"an API client certificate (ClientAuth only)":           issue(testutil.ClientCert, "client"),
	} {
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
		if err := refused(s1.Raft.RaftAddr(), cfg); err == nil {
			t.Errorf("raft port accepted %s", name)
		}
	}
	good := &tls.Config{Certificates: []tls.Certificate{issue(testutil.ServerCert, "s9")}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if err := refused(s1.Raft.RaftAddr(), good); err == nil {
		t.Errorf("raft port accepted the server certificate of s9, not a member of its configuration")
	}

	// Servers added to the cluster: one with its own server certificate,
	// one with the old client.pem, one with another server's certificate.
	// Only the first may receive the log.
	cl := newClient(t, client.Config{}, s1.ClientAddr())
	honest := startOne(t, "s2", dir, withCert(issue(testutil.ServerCert, "s2")))
	defer honest.Close()
	intruders := map[string]*server.Server{
		"a server using the old client.pem":         startOne(t, "s3", dir, withCert(issue(testutil.OldClientCert, "client"))),
		"a server using another server's (s9) cert": startOne(t, "s4", dir, withCert(issue(testutil.ServerCert, "s9"))),
	}
	for _, s := range intruders {
		defer s.Close()
	}
	for _, s := range append([]*server.Server{honest}, intruders["a server using the old client.pem"], intruders["a server using another server's (s9) cert"]) {
		// Non-voters: their acknowledgements are not needed to commit, so
		// the cluster keeps working whatever happens to them.
		if _, err := cl.AddMember(ctxT(t), client.MemberSpec{ID: s.Raft.ID(), RaftAddr: s.Raft.RaftAddr(), NonVoter: true}); err != nil {
			t.Fatalf("add %s: %v", s.Raft.ID(), err)
		}
	}
	for i := range 3 {
		if _, err := cl.Claim(ctxT(t), mustKey("app/identity/k"+string(rune('a'+i))), "h", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the honest server applies the claims", func() bool { return honest.Raft.State().Leases == 3 })
	for name, s := range intruders {
		if st := s.Raft.State(); st.Leases != 0 || st.LastIndex != 0 {
			t.Errorf("%s received the log: %d leases, last index %d", name, st.Leases, st.LastIndex)
		}
	}
}

// rawRequestVote sends one RequestVote RPC as server id over a TLS
// connection to addr, the way hashicorp/raft's NetworkTransport frames it
// (a type byte, then the msgpack request), and reports whether an answer
// came back.
func rawRequestVote(t *testing.T, addr string, cfg *tls.Config, id string) bool {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	w := bufio.NewWriter(conn)
	w.WriteByte(1) // rpcRequestVote
	req := raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:1")},
		Term: 1, LastLogIndex: 0, LastLogTerm: 0}
	if err := codec.NewEncoder(w, &codec.MsgpackHandle{}).Encode(&req); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		return false
	}
	var rpcErr string
	var resp raft.RequestVoteResponse
	dec := codec.NewDecoder(bufio.NewReader(conn), &codec.MsgpackHandle{})
	return dec.Decode(&rpcErr) == nil && dec.Decode(&resp) == nil
}

// A member's server certificate lets its holder speak as that server only:
// an RPC whose header names another server is dropped unanswered.
func TestRaftRPCMustComeFromTheServerItsCertificateNames(t *testing.T) {
	ca := testutil.NewCA(t, "identity CA")
	dir := t.TempDir()
	s1 := startOne(t, "v1", dir, func(c *server.Config) {
		c.Raft.TLS = replica.PeerTLSConfig(ca.Issue(testutil.ServerCert, "v1"), ca.Pool)
	})
	defer s1.Close()
	bootstrapAlone(t, s1)
	cl := newClient(t, client.Config{}, s1.ClientAddr())
	// v2 is a member (a non-voter) whose certificate someone holds.
	if _, err := cl.AddMember(ctxT(t), client.MemberSpec{ID: "v2", RaftAddr: "127.0.0.1:1", NonVoter: true}); err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.Issue(testutil.ServerCert, "v2")}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if !rawRequestVote(t, s1.Raft.RaftAddr(), cfg, "v2") {
		t.Fatal("a RequestVote from v2 with v2's certificate got no answer")
	}
	if rawRequestVote(t, s1.Raft.RaftAddr(), cfg, "v1") {
		t.Error("a RequestVote claiming to be v1, sent with v2's certificate, was answered")
	}
	if rawRequestVote(t, s1.Raft.RaftAddr(), cfg, "v3") {
		t.Error("a RequestVote claiming to be v3, sent with v2's certificate, was answered")
	}
}

// InstallSnapshot, whose snapshot bytes follow the request on the wire,
// passes the per-RPC sender check intact: after a restore the leader's log
// starts at the snapshot, so a new member can only catch up through one.
func TestRaftTLSInstallsSnapshots(t *testing.T) {
	ca := testutil.NewCA(t, "identity CA")
	dir := t.TempDir()
	withCert := func(id string) func(*server.Config) {
		return func(c *server.Config) {
			c.Raft.TLS = replica.PeerTLSConfig(ca.Issue(testutil.ServerCert, id), ca.Pool)
		}
	}
	s1 := startOne(t, "i1", dir, withCert("i1"))
	defer s1.Close()
	bootstrapAlone(t, s1)
	cl := newClient(t, client.Config{}, s1.ClientAddr())
	for i := range 20 {
		if _, err := cl.Claim(ctxT(t), mustKey("app/snap/k"+string(rune('a'+i))), "h", 4*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	data, _, err := cl.SaveSnapshot(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Raft.RestoreSnapshot(ctxT(t), data); err != nil {
		t.Fatal(err)
	}
	s2 := startOne(t, "i2", dir, withCert("i2"))
	defer s2.Close()
	if _, err := cl.AddMember(ctxT(t), client.MemberSpec{ID: "i2", RaftAddr: s2.Raft.RaftAddr(), NonVoter: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "i2 receives the state", func() bool { return s2.Raft.State().Leases == 20 })
}
