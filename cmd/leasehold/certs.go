package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/internal/replica"
)

func init() {
	var dir, hosts string
	var names []string
	var valid time.Duration
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Generate throw-away test certificates (development and tests only, not a PKI)",
		Long: `Generate throw-away certificates for development and tests. It is not a PKI:
it makes new CAs on every run, cannot renew or revoke, and writes the CA keys
next to the certificates. For production issue certificates from your own
PKI with the same properties (see docs/operations.md).

Two CAs, so a client certificate can never pass as a server's:
  server-ca.pem, server-ca-key.pem  signs the server certificates
  NAME.pem, NAME-key.pem            one per --name: the server NAME (its --id);
                                    server and client authentication, valid
                                    for --hosts, and the URI leasehold-server:NAME
                                    that the Raft transport checks
  client-ca.pem, client-ca-key.pem  signs client certificates
  client.pem, client-key.pem        an API client (the CLI): client
                                    authentication only, no host, no server URI
  api-client-ca.pem                 client-ca.pem and server-ca.pem together: a
                                    server's --tls-client-ca, admitting API
                                    clients and the other servers (join)
Servers use --raft-tls-ca server-ca.pem; clients use --tls-ca server-ca.pem.
Keys are ECDSA P-256, written with mode 0600.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return generateCerts(dir, names, strings.Split(hosts, ","), valid)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "certs", "output directory")
	cmd.Flags().StringSliceVar(&names, "name", []string{"node1", "node2", "node3"}, "server IDs to issue server certificates for")
	cmd.Flags().StringVar(&hosts, "hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs the server certificates are valid for")
	cmd.Flags().DurationVar(&valid, "valid", 365*24*time.Hour, "validity")
	rootCmd.AddCommand(cmd)
}

// testCA is a CA that signs leaf certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(dir, file, name string, now time.Time, valid time.Duration) (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(valid),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key}, writePEM(dir, file, der, key)
}

// issue signs tmpl with a new key and writes NAME.pem and NAME-key.pem.
func (ca *testCA) issue(dir, file string, tmpl *x509.Certificate) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.SerialNumber = serial()
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	return writePEM(dir, file, der, key)
}

func generateCerts(dir string, names, hosts []string, valid time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	serverCA, err := newTestCA(dir, "server-ca", "Leasehold test server CA", now, valid)
	if err != nil {
		return err
	}
	clientCA, err := newTestCA(dir, "client-ca", "Leasehold test client CA", now, valid)
	if err != nil {
		return err
	}
	for _, name := range names {
		if name == "client" || strings.HasSuffix(name, "-ca") {
			return fmt.Errorf("--name %q would overwrite another file", name)
		}
		tmpl := &x509.Certificate{
			Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(valid),
			// A server both accepts and dials Raft connections.
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{replica.ServerURI(name)},
		}
		for _, h := range hosts {
			if h = strings.TrimSpace(h); h == "" {
				continue
			}
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		if err := serverCA.issue(dir, name, tmpl); err != nil {
			return err
		}
	}
	// The client certificate proves nothing but "an API client": no host
	// names, no server URI, client authentication only.
	if err := clientCA.issue(dir, "client", &x509.Certificate{
		Subject: pkix.Name{CommonName: "leasehold client"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(valid),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return err
	}
	bundle := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientCA.cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverCA.cert.Raw})...)
	if err := os.WriteFile(filepath.Join(dir, "api-client-ca.pem"), bundle, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote TEST certificates (not for production) in %s: server-ca.pem, server certificates for %s, client-ca.pem, client.pem, api-client-ca.pem\n",
		dir, strings.Join(names, ", "))
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}
