package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
