package metrics

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T, cn string, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestCertExpiry exports the API and the Raft certificates' expiry side by
// side, and follows a certificate reloaded through GetCertificate.
func TestCertExpiry(t *testing.T) {
	m := New(nil)
	defer m.Close()
	api := selfSigned(t, "api.example", time.Unix(2_000_000_000, 0))
	reloaded := selfSigned(t, "node1", time.Unix(2_100_000_000, 0))
	m.AddCertificates("api", &tls.Config{Certificates: []tls.Certificate{api}})
	m.AddCertificates("raft", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &reloaded, nil }})
	m.AddCertificates("none", nil)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "leasehold_tls_cert_expiry_timestamp_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			got = append(got, fmt.Sprintf("%s %.0f", strings.Join(ls, ","), mt.GetGauge().GetValue()))
		}
	}
	want := []string{"subject=api.example,use=api 2000000000", "subject=node1,use=raft 2100000000"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
