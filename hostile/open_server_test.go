package hostile

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenServerRefused: `leasehold server` (the built binary) with no
// usable tokens on a client address beyond loopback would make every caller
// an admin. Each way of asking for that is refused at start with exit code
// 2, naming --insecure-allow-open, before anything listens.
func TestOpenServerRefused(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "leasehold")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/leasehold").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	empty := filepath.Join(dir, "tokens")
	if err := os.WriteFile(empty, []byte("# no tokens yet\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	port := func() string { _, p, _ := net.SplitHostPort(free()); return p }
	cases := []struct {
		name       string
		clientAddr string
		env        []string
		args       []string
	}{
		{"no tokens on 0.0.0.0", "0.0.0.0:" + port(), nil, nil},
		{"no tokens on every interface (empty host)", ":" + port(), nil, nil},
		{"no tokens on [::]", "[::]:" + port(), nil, nil},
		{"no tokens on a host name", "leasehold.internal:" + port(), nil, nil},
		{"a tokens file with no tokens", "0.0.0.0:" + port(), nil, []string{"--tokens-file", empty}},
		{"LEASEHOLD_TOKENS_FILE with no tokens", "0.0.0.0:" + port(), []string{"LEASEHOLD_TOKENS_FILE=" + empty}, nil},
		{"insecure_allow_open=false in the flags", "0.0.0.0:" + port(), nil, []string{"--insecure-allow-open=false"}},
	}
	for i, tc := range cases {
		raft := free()
		args := append([]string{"server", "--id", "h1", "--data-dir", filepath.Join(dir, "d", string(rune('a'+i))),
			"--client-addr", tc.clientAddr, "--raft-addr", raft, "--http-addr", free(), "--bootstrap", "h1=" + raft}, tc.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(append(os.Environ(), "LEASEHOLD_TOKENS=", "LEASEHOLD_TOKENS_FILE="), tc.env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out.String(), "--insecure-allow-open") {
			t.Errorf("%s: %v, want exit code 2 naming --insecure-allow-open\n%s", tc.name, err, out.String())
		}
	}
}
