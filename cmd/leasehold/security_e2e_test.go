package main

import (
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/pemfile"
)

// startServer runs `leasehold server args...` until it logs "serving",
// failing if it exits first; the child is stopped when the test ends.
func startServer(t *testing.T, env []string, args ...string) *serverProc {
	t.Helper()
	s := &serverProc{id: "server", stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, append([]string{"server"}, args...)...)
	s.cmd.Env = append(append(os.Environ(), "LEASEHOLD_TOKEN=", "LEASEHOLD_TOKENS=", "LEASEHOLD_TOKENS_FILE="), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			s.kill()
		}
	})
	waitFor(t, 20*time.Second, "the server to start", []*serverProc{s}, func() bool { return strings.Contains(s.stderr.String(), "msg=serving") })
	return s
}

// The second scenario of issue 17: `leasehold server` with no tokens on a
// non-loopback client address served everyone as admin. It must refuse
// unless --insecure-allow-open says so, and then say loudly that it is open;
// tokens over plain TCP on such an address are warned about.
func TestServerRefusesToServeOpenBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	node := func(name string) []string {
		a := freeAddrs(t, 3)
		_, port, _ := strings.Cut(a[0], ":")
		return []string{"--id", name, "--data-dir", filepath.Join(dir, name), "--client-addr", "0.0.0.0:" + port,
			"--raft-addr", a[1], "--http-addr", a[2], "--bootstrap", name + "=" + a[1]}
	}
	r := cli(t, "", append([]string{"server"}, node("open")...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "--insecure-allow-open") {
		t.Fatalf("server without tokens on 0.0.0.0: exit code %d (want 2, refused naming --insecure-allow-open)\n%s", r.code, r.stderr)
	}

	s := startServer(t, nil, append(node("allowed"), "--insecure-allow-open")...)
	if !strings.Contains(s.stderr.String(), "level=WARN msg=\"INSECURE: serving with NO AUTHENTICATION") {
		t.Errorf("an explicitly open server does not warn:\n%s", s.stderr)
	}
	s = startServer(t, []string{"LEASEHOLD_TOKENS=admin:adm-1"}, node("tokens")...)
	if !strings.Contains(s.stderr.String(), "plain TCP") {
		t.Errorf("tokens over plain TCP on 0.0.0.0 are not warned about:\n%s", s.stderr)
	}
	// Loopback stays open without ceremony (a developer's single server).
	a := freeAddrs(t, 3)
	s = startServer(t, nil, "--id", "local", "--data-dir", filepath.Join(dir, "local"), "--client-addr", a[0],
		"--raft-addr", a[1], "--http-addr", a[2], "--bootstrap", "local="+a[1])
	if strings.Contains(s.stderr.String(), "level=WARN") {
		t.Errorf("a loopback server warns:\n%s", s.stderr)
	}
}

// The first scenario of issue 17, on the binary: with certificates from
// `leasehold certs`, a third server started with the CLI's certificate as
// its Raft certificate joined the other two and replicated their writes.
// Now it stops at start naming the problem, the cluster never lists it, and
// the CLI's certificate cannot open a server's Raft port.
func TestClientCertificateCannotJoinRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	e := newOpsEnv(t)
	expect(t, cli(t, "", "certs", "--dir", e.certs, "--name", "node1,node2,node3", "--hosts", "localhost,127.0.0.1"), 0, "certs")
	addrs := [][]string{freeAddrs(t, 3), freeAddrs(t, 3)}
	boot := "node1=" + addrs[0][1] + ",node2=" + addrs[1][1]
	var procs []*serverProc
	for i, a := range addrs {
		id := "node" + string(rune('1'+i))
		p := e.config(t, id, id, boot, a)
		p.start(t, nil)
		procs = append(procs, p)
	}
	eps := addrs[0][0] + "," + addrs[1][0]
	waitFor(t, 30*time.Second, "a leader", procs, func() bool {
		r := e.op(t, opsAdmin, eps, "status", "--json")
		return r.code == 0 && strings.HasPrefix(decode(t, r)["leader_id"].(string), "node")
	})

	intruder := e.config(t, "node3", "client", "", freeAddrs(t, 3))
	intruder.start(t, []string{"LEASEHOLD_TOKEN=" + opsAdmin}, "--join", addrs[0][0])
	select {
	case <-intruder.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("a server with the client certificate as its Raft certificate is still running\n%s", intruder.stderr)
	}
	if code := intruder.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(intruder.stderr.String(), "not a server certificate") {
		t.Fatalf("intruder exit code %d, want 2 naming the certificate\n%s", code, intruder.stderr)
	}
	r := e.op(t, opsAdmin, eps, "member", "list", "--json")
	expect(t, r, 0, "member list")
	if ms := members(t, r); len(ms) != 2 {
		t.Fatalf("member list after the intruder: %v", ms)
	}

	// A raw TLS connection to the Raft port with the CLI's certificate.
	cert, err := tls.LoadX509KeyPair(filepath.Join(e.certs, "client.pem"), filepath.Join(e.certs, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pemfile.CertPool(filepath.Join(e.certs, "server-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addrs[0][1], &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	if err == nil {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the refusal arrives on the first read
		conn.Close()
	}
	if err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the Raft port accepted the client certificate (%v)", err)
	}
}
