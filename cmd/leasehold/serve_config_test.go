package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/leasehold/leasehold/internal/pemfile"
	"github.com/leasehold/leasehold/internal/replica"
)

func parseServerFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	addServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func writeFile(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "leasehold.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServerConfigPrecedence(t *testing.T) {
	file := writeFile(t, `{"id":"from-file","data_dir":"/var/lib/leasehold","raft_addr":"10.0.0.1:7201",
		"tick":"100ms","snapshot_threshold":100,"tokens_file":"/etc/file-tokens","max_duration":"2m"}`)
	env := map[string]string{"LEASEHOLD_TOKENS_FILE": "/run/secrets/tokens", "LEASEHOLD_TOKENS": "admin:s3cret,agent:a1"}
	fs := parseServerFlags(t, "--config", file, "--id", "from-flag", "--tick", "50ms", "--tokens-file", "/flag-tokens")
	c, err := resolveServerConfig(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "from-flag" || c.DataDir != "/var/lib/leasehold" || c.RaftAddr != "10.0.0.1:7201" {
		t.Errorf("flag over file: %+v", c)
	}
	if time.Duration(c.Tick) != 50*time.Millisecond || c.SnapshotThreshold != 100 || time.Duration(c.MaxDuration) != 2*time.Minute {
		t.Errorf("tick %v threshold %d max %v", time.Duration(c.Tick), c.SnapshotThreshold, time.Duration(c.MaxDuration))
	}
	if c.ClientAddr != "127.0.0.1:7101" || time.Duration(c.SnapshotInterval) != 2*time.Minute {
		t.Errorf("defaults lost: %+v", c)
	}
	if c.TokensFile != "/run/secrets/tokens" || len(c.Tokens) != 2 {
		t.Errorf("env over flag for secrets: %q %v", c.TokensFile, c.Tokens)
	}
	// A flag left at its default does not override the file.
	c, err = resolveServerConfig(parseServerFlags(t, "--config", file), func(string) string { return "" })
	if err != nil || c.ID != "from-file" || time.Duration(c.Tick) != 100*time.Millisecond || c.TokensFile != "/etc/file-tokens" {
		t.Errorf("file values: %v %+v", err, c)
	}
}

func TestServerConfigValidation(t *testing.T) {
	base := []string{"--id", "n1", "--data-dir", "/d"}
	cases := []struct {
		file string
		args []string
		want string
	}{
		{"", []string{"--data-dir", "/d"}, "id: required"},
		{"", []string{"--id", "n1"}, "data_dir: required"},
		{"", append(base, "--raft-addr", "0.0.0.0:7201"), "raft_addr"},
		{"", append(base, "--client-addr", "nope"), "client_addr"},
		{"", append(base, "--bootstrap", "n1=127.0.0.1:1", "--join", "x:1"), "join"},
		{"", append(base, "--join-as", "observer", "--join", "x:1"), "join_as"},
		{"", append(base, "--tls-cert", "c.pem"), "tls_cert"},
		{"", append(base, "--raft-tls-cert", "c.pem", "--raft-tls-key", "k.pem"), "raft_tls_cert"},
		{"", append(base, "--min-duration", "10s", "--max-duration", "5s"), "max_duration"},
		{"", append(base, "--restore-snapshot", "/s"), "restore_snapshot"},
		{"", append(base, "--tick", "1ms"), "tick"},
		{`{"id":"n1","data_dir":"/d","tik":"1s"}`, nil, `unknown field "tik"`},
		{`{"id":"n1","data_dir":"/d","tick":250}`, nil, "duration string"},
	}
	for _, tc := range cases {
		args := tc.args
		if tc.file != "" {
			args = append(args, "--config", writeFile(t, tc.file))
		}
		_, err := resolveServerConfig(parseServerFlags(t, args...), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %s: got %v, want an error about %s", tc.args, tc.file, err, tc.want)
		}
	}
	if _, err := resolveServerConfig(parseServerFlags(t, base...), func(k string) string {
		if k == "LEASEHOLD_TOKENS" {
			return "root:x"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "tokens") {
		t.Errorf("bad env token accepted: %v", err)
	}
}

func TestSampleConfigIsValid(t *testing.T) {
	c, err := resolveServerConfig(parseServerFlags(t, "--config", "../../deploy/leasehold.json"), func(string) string { return "" })
	if err != nil {
		t.Fatalf("deploy/leasehold.json: %v", err)
	}
	if c.ID == "" {
		t.Fatal("sample config has no id")
	}
}

// `leasehold certs` issues distinct server and client certificates from
// distinct CAs: a server certificate names its server and passes the Raft
// transport's checks; the client certificate is for client authentication
// only, passes none of them, and is not signed by the server CA.
func TestGenerateCerts(t *testing.T) {
	dir := t.TempDir()
	if err := generateCerts(dir, []string{"a", "b"}, []string{"localhost", "127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	p := func(f string) string { return filepath.Join(dir, f) }
	for _, f := range []string{"server-ca.pem", "client-ca.pem", "api-client-ca.pem", "a.pem", "a-key.pem", "b.pem", "client.pem", "client-key.pem"} {
		if _, err := os.Stat(p(f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := replica.ServerTLSConfig("a", p("a.pem"), p("a-key.pem"), p("server-ca.pem")); err != nil {
		t.Errorf("server certificate a refused as a's Raft certificate: %v", err)
	}
	if _, err := replica.ServerTLSConfig("b", p("a.pem"), p("a-key.pem"), p("server-ca.pem")); err == nil {
		t.Error("a's certificate accepted as server b's Raft certificate")
	}
	for _, ca := range []string{"server-ca.pem", "client-ca.pem", "api-client-ca.pem"} {
		if _, err := replica.ServerTLSConfig("client", p("client.pem"), p("client-key.pem"), p(ca)); err == nil {
			t.Errorf("client certificate accepted as a Raft certificate (CA %s)", ca)
		}
	}
	leaf := func(f string) *x509.Certificate {
		c, err := tls.LoadX509KeyPair(p(f), p(strings.TrimSuffix(f, ".pem")+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		x, _ := x509.ParseCertificate(c.Certificate[0])
		return x
	}
	verify := func(f, ca string, usage x509.ExtKeyUsage) error {
		pool, err := pemfile.CertPool(p(ca))
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf(f).Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	if err := verify("client.pem", "client-ca.pem", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("client certificate as an API client: %v", err)
	}
	if err := verify("client.pem", "api-client-ca.pem", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("client certificate against the servers' tls_client_ca bundle: %v", err)
	}
	if err := verify("a.pem", "api-client-ca.pem", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("server certificate against the servers' tls_client_ca bundle (join, registration): %v", err)
	}
	if err := verify("client.pem", "client-ca.pem", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("client certificate is valid for server authentication: it could pose as a server")
	}
	if err := verify("client.pem", "server-ca.pem", x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("client certificate signed by the server CA")
	}
	if err := verify("a.pem", "server-ca.pem", x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("server certificate as an API server: %v", err)
	}
}

func TestExposure(t *testing.T) {
	cases := []struct {
		addr          string
		tokens        int
		tls, allow    bool
		refuse, warns bool
	}{
		{"127.0.0.1:7101", 0, false, false, false, false},
		{"localhost:7101", 0, false, false, false, false},
		{"[::1]:7101", 0, false, false, false, false},
		{"0.0.0.0:7101", 0, false, false, true, false},
		{":7101", 0, true, false, true, false},
		{"10.0.0.1:7101", 0, true, false, true, false},
		{"leasehold.internal:7101", 0, true, false, true, false},
		{"10.0.0.1:7101", 0, false, true, false, true},
		{"10.0.0.1:7101", 2, false, false, false, true},
		{"10.0.0.1:7101", 2, true, false, false, false},
	}
	for _, tc := range cases {
		warn, err := exposure(tc.addr, tc.tokens, tc.tls, tc.allow)
		if (err != nil) != tc.refuse || (warn != "") != tc.warns {
			t.Errorf("%+v: warning %q, error %v", tc, warn, err)
		}
	}
	c, err := resolveServerConfig(parseServerFlags(t, "--id", "n1", "--data-dir", "/d", "--insecure-allow-open"), func(string) string { return "" })
	if err != nil || !c.InsecureAllowOpen {
		t.Fatalf("--insecure-allow-open: %v %+v", err, c)
	}
}

// --max-calls (and max_calls in the file) reaches the API server's limit.
func TestMaxCallsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0}, // 0: grpcserver.DefaultMaxCalls
		{[]string{"--max-calls", "100"}, 100},
		{[]string{"--config", writeFile(t, `{"max_calls": 7}`)}, 7},
	} {
		args := append([]string{"--id", "n1", "--data-dir", t.TempDir()}, tc.args...)
		c, err := resolveServerConfig(parseServerFlags(t, args...), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := buildService(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Server.MaxCalls != tc.want {
			t.Errorf("%v: MaxCalls %d, want %d", tc.args, cfg.Server.MaxCalls, tc.want)
		}
	}
}
