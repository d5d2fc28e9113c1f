package replica

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/pemfile"
)

// ServerURIScheme is the scheme of the URI SAN that makes a certificate a
// Leasehold server certificate: "leasehold-server:ID" names the Raft server
// ID the holder may speak for. A certificate without one (an API client's,
// say) cannot join the Raft conversation however it was signed.
const ServerURIScheme = "leasehold-server"

// ServerURI is the URI SAN to put in the certificate of server id.
func ServerURI(id string) *url.URL {
	return &url.URL{Scheme: ServerURIScheme, Opaque: url.PathEscape(id)}
}

// ServerIDs returns the server IDs cert names in leasehold-server: URIs.
func ServerIDs(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		if u.Scheme != ServerURIScheme {
			continue
		}
		if id, err := url.PathUnescape(u.Opaque); err == nil && id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// tlsStreamLayer is a raft.StreamLayer over mutual TLS. Both ends of every
// connection check that the other presents a server certificate of this
// cluster (see verifyServerCert). The dialer also checks that the server it
// reached is the one the Raft configuration lists at that address, and the
// acceptor that the peer is a member of the configuration (while it knows
// one: a server that is joining knows none until the leader reaches it).
type tlsStreamLayer struct {
	net.Listener
	advertise net.Addr
	config    *tls.Config
	// raft is set once Raft runs; until then there is no configuration to
	// check peers against and connections are refused (Raft retries).
	raft atomic.Pointer[raft.Raft]
}

func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := l.config.Clone()
	base := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := base(cs); err != nil {
			return err
		}
		want, err := l.idsAt(address)
		if err != nil {
			return err
		}
		got := ServerIDs(cs.PeerCertificates[0])
		for _, id := range want {
			if slices.Contains(got, id) {
				return nil
			}
		}
		return fmt.Errorf("raft TLS: %s presented a certificate for server %v; the configuration has %v there", address, got, want)
	}
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), cfg)
}

// idsAt returns the IDs the latest Raft configuration lists at address.
func (l *tlsStreamLayer) idsAt(address raft.ServerAddress) ([]string, error) {
	r := l.raft.Load()
	if r == nil {
		return nil, errors.New("raft TLS: not started yet")
	}
	var ids []string
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.Address == address {
			ids = append(ids, string(s.ID))
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("raft TLS: no server at %s in the configuration", address)
	}
	return ids, nil
}

// verifyMember is the acceptor's check: the peer's certificate names a
// server of the latest configuration, unless this server knows none yet.
func (l *tlsStreamLayer) verifyMember(cs tls.ConnectionState) error {
	r := l.raft.Load()
	if r == nil {
		return errors.New("raft TLS: not started yet")
	}
	servers := r.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		return nil // joining: the first leader to reach us brings the configuration
	}
	got := ServerIDs(cs.PeerCertificates[0])
	for _, s := range servers {
		if slices.Contains(got, string(s.ID)) {
			return nil
		}
	}
	return fmt.Errorf("raft TLS: peer certificate for server %v: not a member of the configuration", got)
}

// Accept wraps each accepted connection so every RPC it carries must be sent
// as the server its certificate names (see rpcCheckConn).
func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &rpcCheckConn{Conn: conn, tc: conn.(*tls.Conn), br: bufio.NewReaderSize(conn, 64<<10)}, nil
}

func (l *tlsStreamLayer) Addr() net.Addr {
	if l.advertise != nil {
		return l.advertise
	}
	return l.Listener.Addr()
}

// hashicorp/raft's NetworkTransport frames each RPC as a type byte and a
// msgpack-encoded request; an InstallSnapshot request is followed by Size
// bytes of snapshot.
const (
	rpcTypeAppendEntries uint8 = iota
	rpcTypeRequestVote
	rpcTypeInstallSnapshot
	rpcTypeTimeoutNow
	rpcTypeRequestPreVote
)

// rpcCheckConn is an accepted Raft connection that reads each RPC ahead of
// the transport and passes it on only if the sender ID in its header is a
// server ID the peer's certificate names: holding one server's certificate
// does not let a peer vote, append or install a snapshot as another. A
// mismatch is a read error, on which the transport drops the connection
// without handling the RPC.
type rpcCheckConn struct {
	net.Conn
	tc   *tls.Conn
	br   *bufio.Reader
	ids  []string // from the peer's certificate, after the handshake
	out  []byte   // checked bytes the transport has not read yet
	raw  int64    // snapshot bytes to pass through
	err  error
	rec  recorder
	hdr  rpcHeaderOnly
	hand bool
}

// rpcHeaderOnly decodes the fields the check needs and skips the rest. The
// header is embedded, as in raft's requests, whose encoding flattens it.
type rpcHeaderOnly struct {
	raft.RPCHeader
	Size int64 // InstallSnapshotRequest only
}

// recorder keeps every byte the decoder reads, to hand them on unchanged.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

func (c *rpcCheckConn) Read(p []byte) (int, error) {
	if len(c.out) == 0 && c.raw == 0 && c.err == nil {
		c.err = c.next()
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	if c.raw > 0 {
		n, err := c.br.Read(p[:min(int64(len(p)), c.raw)])
		c.raw -= int64(n)
		return n, err
	}
	return 0, c.err
}

// next reads one RPC and checks its sender.
func (c *rpcCheckConn) next() error {
	if !c.hand {
		if err := c.tc.Handshake(); err != nil {
			return err
		}
		c.hand = true
		c.ids = ServerIDs(c.tc.ConnectionState().PeerCertificates[0]) // verified non-empty in the handshake
	}
	typ, err := c.br.ReadByte()
	if err != nil {
		return err
	}
	if typ > rpcTypeRequestPreVote {
		return fmt.Errorf("raft TLS: unknown RPC type %d", typ)
	}
	c.rec = recorder{r: c.br, buf: append(c.out[:0], typ)}
	c.hdr = rpcHeaderOnly{}
	if err := codec.NewDecoder(&c.rec, &codec.MsgpackHandle{}).Decode(&c.hdr); err != nil {
		return err
	}
	if id := string(c.hdr.RPCHeader.ID); !slices.Contains(c.ids, id) {
		return fmt.Errorf("raft TLS: a peer with the certificate of server %v sent an RPC as server %q", c.ids, id)
	}
	c.out = c.rec.buf
	if typ == rpcTypeInstallSnapshot {
		if c.hdr.Size < 0 {
			return errors.New("raft TLS: negative snapshot size")
		}
		c.raw = c.hdr.Size
	}
	return nil
}

// newTLSTransport listens on bind with cfg (from PeerTLSConfig). The caller
// hands the layer its Raft once it runs (layer.raft.Store), so peers can be
// checked against the configuration.
func newTLSTransport(bind string, advertise net.Addr, cfg *tls.Config, logger hclog.Logger) (*raft.NetworkTransport, *tlsStreamLayer, error) {
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		return nil, nil, errors.New("raftnode: raft TLS needs a certificate")
	}
	if cfg.VerifyConnection == nil {
		return nil, nil, errors.New("raftnode: raft TLS configuration must come from PeerTLSConfig")
	}
	layer := &tlsStreamLayer{advertise: advertise, config: cfg}
	accept := cfg.Clone()
	base := cfg.VerifyConnection
	accept.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := base(cs); err != nil {
			return err
		}
		return layer.verifyMember(cs)
	}
	lis, err := tls.Listen("tcp", bind, accept)
	if err != nil {
		return nil, nil, err
	}
	layer.Listener = lis
	return raft.NewNetworkTransportWithConfig(netTransportConfig(layer, logger)), layer, nil
}

// ServerTLSConfig builds the Raft transport's mutual TLS configuration from
// PEM files: server id's certificate and key, and the CA of the cluster's
// server certificates. It refuses a certificate that is not a server
// certificate for id, so a misconfigured server stops at start with a clear
// message rather than being refused by every peer.
func ServerTLSConfig(id, certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: load key pair: %w", err)
	}
	pool, err := pemfile.CertPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %s: %w", certFile, err)
	}
	if err := verifyServerCert(leaf, cert.Certificate[1:], pool); err != nil {
		return nil, fmt.Errorf("raft TLS: %s: %w", certFile, err)
	}
	if !slices.Contains(ServerIDs(leaf), id) {
		return nil, fmt.Errorf("raft TLS: %s is a server certificate for %v, not for this server's id %q", certFile, ServerIDs(leaf), id)
	}
	return PeerTLSConfig(cert, pool), nil
}

// PeerTLSConfig is the Raft transport's mutual TLS configuration from
// parsed material: this server's certificate, and the pool of CAs that sign
// server certificates. Both ends of a connection present their certificate
// and require the other's to be a server certificate (verifyServerCert).
// Peers dial each other by Raft address, often an IP, so host names are not
// checked; the server ID in the certificate is (see tlsStreamLayer).
func PeerTLSConfig(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    ca,
		ClientAuth:   tls.RequireAnyClientCert, // verified below, with the server-certificate rules
		// Dialing: verify the chain ourselves, without the host name check.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("raft TLS: peer sent no certificate")
			}
			var inter [][]byte
			for _, c := range cs.PeerCertificates[1:] {
				inter = append(inter, c.Raw)
			}
			return verifyServerCert(cs.PeerCertificates[0], inter, ca)
		},
	}
}

// verifyServerCert checks that leaf is a Leasehold server certificate: it
// chains to ca, is valid for both server and client authentication (a
// server accepts and dials), and names at least one server ID. An API
// client certificate (client authentication only, no server URI) fails.
func verifyServerCert(leaf *x509.Certificate, intermediates [][]byte, ca *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, der := range intermediates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Errorf("not a server certificate of this cluster: %w", err)
		}
	}
	if len(ServerIDs(leaf)) == 0 {
		return fmt.Errorf("not a server certificate: it names no server (want a %s:ID URI)", ServerURIScheme)
	}
	return nil
}
