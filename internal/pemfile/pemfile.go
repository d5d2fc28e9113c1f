// Package pemfile loads the PEM material Leasehold's TLS configurations
// share: a CA bundle as a certificate pool. The API server, the Go client and
// the Raft transport each build their own tls.Config around it.
package pemfile

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool reads the PEM certificates in path into a new pool. A file with
// no certificate in it is an error, not an empty pool that would trust
// nothing and fail later with a less useful message.
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificates in %s", path)
	}
	return pool, nil
}
