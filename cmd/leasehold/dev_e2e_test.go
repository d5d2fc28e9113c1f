package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devCluster is a `leasehold dev` child process.
type devCluster struct {
	cmd       *exec.Cmd
	base      int
	dir       string // its temporary data directory, read from its banner
	endpoints string
	stderr    *syncBuffer
	exited    chan struct{}
	exitErr   error
}

// syncBuffer is a bytes.Buffer the child's stderr copier and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeBase picks a base port whose nine ports (base+1..3, +101..103,
// +201..203) are free right now, trying random bases in a high range.
func freeBase(t *testing.T) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(400)*100
		var ls []net.Listener
		ok := true
		for _, off := range []int{1, 2, 3, 101, 102, 103, 201, 202, 203} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free base port found")
	return 0
}

// startDev runs `leasehold dev` on a free base port and waits for its
// banner. The child is killed and its directory removed when the test ends.
func startDev(t *testing.T) *devCluster {
	t.Helper()
	for attempt := 0; ; attempt++ {
		d, err := tryStartDev(t, freeBase(t))
		if err == nil {
			return d
		}
		// Another process may take a port between the check and the bind.
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("dev cluster did not start (%v); retrying on another base", err)
	}
}

func tryStartDev(t *testing.T, base int) (*devCluster, error) {
	d := &devCluster{base: base, stderr: &syncBuffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(binary, "dev", "--base-port", fmt.Sprint(base), "--log-level", "warn")
	d.cmd.Stderr = d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() {
		// Drain stdout to EOF before Wait, which closes the pipe.
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { d.kill(t) })
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				<-d.exited
				return nil, fmt.Errorf("dev exited before its banner: %v\n%s", d.exitErr, d.stderr)
			}
			if _, dir, found := strings.Cut(line, "data in "); found {
				d.dir = strings.TrimSpace(dir)
			}
			if strings.HasPrefix(line, "Press Ctrl-C") {
				go func() {
					for range lines { // keep the pipe drained
					}
				}()
				d.endpoints = fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", base+1, base+2, base+3)
				if d.dir == "" {
					return nil, fmt.Errorf("no data directory in the banner")
				}
				return d, nil
			}
		case <-timeout.C:
			return nil, fmt.Errorf("no banner within 30s\n%s", d.stderr)
		}
	}
}

func (d *devCluster) kill(t *testing.T) {
	select {
	case <-d.exited:
	default:
		d.cmd.Process.Kill()
		<-d.exited
	}
	if d.dir != "" && strings.Contains(d.dir, "leasehold-dev-") {
		os.RemoveAll(d.dir)
	}
}

// TestDevClusterCLI runs the client commands of CLI.md against a real
// `leasehold dev` cluster and checks output (text and --json) and exit
// codes: 0, 2 (invalid), 3 (denied), 4 (not held), 7 (deadline), then
// stops the cluster with SIGTERM (clean exit, temporary directory removed)
// and checks 5 (unavailable) against its dead endpoints. Overloaded (6) and
// the auth codes (8) are left to the fake-backend tests: the dev cluster is
// open and two cores cannot overload it from a CLI.
func TestDevClusterCLI(t *testing.T) {
	d := startDev(t)
	eps := d.endpoints
	const k = "app/model-1/db"

	r := cli(t, eps, "claim", k, "unit/0", "--duration", "30s", "--json")
	expect(t, r, 0, "claim")
	m := decode(t, r)
	tok, _ := m["token"].(float64)
	if m["key"] != k || m["holder"] != "unit/0" || m["result"] != "granted" || tok < 1 || m["expires_in_ms"].(float64) <= 29000 {
		t.Fatalf("claim JSON %v", m)
	}
	r = cli(t, eps, "claim", k, "unit/0", "--duration", "40s")
	expect(t, r, 0, "re-claim (text)")
	if !strings.HasPrefix(r.stdout, "extended "+k+" to unit/0: token "+fmt.Sprint(int(tok))) {
		t.Fatalf("re-claim text %q", r.stdout)
	}
	r = cli(t, eps, "claim", k, "unit/1", "--duration", "30s", "--json")
	expect(t, r, 3, "denied")
	if e := errJSON(t, r, "denied"); e["holder"] != "unit/0" || e["expires_in_ms"].(float64) <= 0 || e["retryable"] != false {
		t.Fatalf("denied JSON %v", e)
	}
	r = cli(t, eps, "claim", k, "unit/1", "--duration", "30s")
	expect(t, r, 3, "denied (text)")
	if !strings.Contains(r.stderr, "denied") || !strings.Contains(r.stderr, "unit/0") {
		t.Fatalf("denied text %q", r.stderr)
	}
	errJSON(t, expectCode(t, cli(t, eps, "extend", k, "unit/1", "--duration", "30s", "--json"), 4), "not_held")
	expectCode(t, cli(t, eps, "revoke", k, "unit/1"), 4)
	r = expectCode(t, cli(t, eps, "claim", k, "unit/0", "--duration", "25h", "--json"), 2) // above the cap (a renewal above max_duration is clamped)
	if e := errJSON(t, r, "invalid_argument"); e["field"] != "duration" {
		t.Fatalf("invalid JSON %v", e)
	}
	errJSON(t, expectCode(t, cli(t, eps, "claim", "no-slashes", "unit/0", "--duration", "10s", "--json"), 2), "invalid_argument")
	expectCode(t, cli(t, eps, "claim", k), 2) // usage

	r = cli(t, eps, "extend", k, "unit/0", "--duration", "50s", "--json")
	expect(t, r, 0, "extend")
	if m := decode(t, r); m["result"] != "extended" || m["token"].(float64) != tok {
		t.Fatalf("extend JSON %v", m)
	}
	expect(t, cli(t, eps, "pin", k, "upgrade"), 0, "pin")
	r = cli(t, eps, "get", k, "--json")
	expect(t, r, 0, "get")
	if m := decode(t, r); m["found"] != true || m["holder"] != "unit/0" || m["pinned"] != true || m["token"].(float64) != tok {
		t.Fatalf("get JSON %v", m)
	}
	expect(t, cli(t, eps, "unpin", k, "upgrade"), 0, "unpin")
	expect(t, cli(t, eps, "claim", "app/model-1/web", "unit/2", "--duration", "30s"), 0, "claim 2")
	r = cli(t, eps, "list", "app/model-1", "--json")
	expect(t, r, 0, "list")
	if ls, _ := decode(t, r)["leases"].([]any); len(ls) != 2 {
		t.Fatalf("list JSON %q", r.stdout)
	}
	r = cli(t, eps, "get", k, "--stale")
	expect(t, r, 0, "stale get")
	if !strings.Contains(r.stdout, "holder=unit/0") {
		t.Fatalf("stale get text %q", r.stdout)
	}
	r = cli(t, eps, "status", "--json")
	expect(t, r, 0, "status")
	sm := decode(t, r)
	if id, _ := sm["leader_id"].(string); !strings.HasPrefix(id, "node") || len(sm["servers"].([]any)) != 3 || len(sm["members"].([]any)) != 3 {
		t.Fatalf("status JSON %v", sm)
	}
	r = cli(t, eps, "status")
	expect(t, r, 0, "status text")
	if !strings.Contains(r.stdout, "leader: node") {
		t.Fatalf("status text %q", r.stdout)
	}
	// Deadline (7): wait gives up while the lease is still held.
	errJSON(t, expectCode(t, cli(t, eps, "wait", k, "--max-wait", "300ms", "--json"), 7), "deadline_exceeded")
	r = cli(t, eps, "revoke", k, "unit/0", "--json")
	expect(t, r, 0, "revoke")
	if m := decode(t, r); m["result"] != "revoked" {
		t.Fatalf("revoke JSON %v", m)
	}
	r = cli(t, eps, "watch", "app", "--from", "1", "--count", "3", "--json")
	expect(t, r, 0, "watch")
	if evs := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(evs) != 3 || !strings.Contains(evs[0], `"claimed"`) {
		t.Fatalf("watch output %q", r.stdout)
	}

	// SIGTERM: a clean exit that removes the temporary directory.
	if _, err := os.Stat(d.dir); err != nil {
		t.Fatalf("data directory %s: %v", d.dir, err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("dev did not exit within 20s of SIGTERM\n%s", d.stderr)
	}
	if d.exitErr != nil {
		t.Fatalf("dev exited with %v after SIGTERM\n%s", d.exitErr, d.stderr)
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Fatalf("temporary directory %s still there after exit: %v", d.dir, err)
	}
	if !strings.Contains(d.stderr.String(), "stopping the dev cluster") {
		t.Errorf("no shutdown message on stderr: %q", d.stderr)
	}

	// Unavailable (5): every endpoint stopped.
	r = expectCode(t, cli(t, eps, "claim", k, "unit/0", "--duration", "10s", "--json", "--timeout", "3s"), 5)
	errJSON(t, r, "unavailable")
	expectCode(t, cli(t, eps, "get", k), 5)
}
