package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/pemfile"
)

// tlsStreamLayer is a raft.StreamLayer over mutual TLS: servers present
// their certificate both when they accept and when they dial, and check the
// peer's against the cluster CA, so only holders of a cluster certificate
// can join the Raft conversation.
type tlsStreamLayer struct {
	net.Listener
	advertise net.Addr
	config    *tls.Config
}

func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(address), l.config)
}

func (l *tlsStreamLayer) Addr() net.Addr {
	if l.advertise != nil {
		return l.advertise
	}
	return l.Listener.Addr()
}

// newTLSTransport listens on bind with cfg (which must hold the server's
// certificate, ClientCAs with RequireAndVerifyClientCert, and RootCAs to
// verify peers when dialing).
func newTLSTransport(bind string, advertise net.Addr, cfg *tls.Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		return nil, errors.New("raftnode: raft TLS needs a certificate")
	}
	lis, err := tls.Listen("tcp", bind, cfg)
	if err != nil {
		return nil, err
	}
	layer := &tlsStreamLayer{Listener: lis, advertise: advertise, config: cfg}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 4, Timeout: 10 * time.Second, Logger: logger,
	}), nil
}

// ServerTLSConfig builds the Raft transport's mutual TLS configuration from
// PEM files: this server's certificate and key, and the cluster CA that must
// have signed every peer's certificate. Peers dial each other by raft
// address, often an IP, so the peer's name is not checked; the CA (one per
// cluster, signing only its servers) is what admits a peer.
func ServerTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: load key pair: %w", err)
	}
	pool, err := pemfile.CertPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	return PeerTLSConfig(cert, pool), nil
}

// PeerTLSConfig is ServerTLSConfig from parsed material.
func PeerTLSConfig(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// Dialing: verify the chain against the CA ourselves, without the
		// host name check (see ServerTLSConfig).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("raft TLS: peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ca, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
}
