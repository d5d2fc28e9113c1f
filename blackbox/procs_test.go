package blackbox

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds cmd/leasehold into dir, or returns $LEASEHOLD_BLACKBOX_BIN
// (a binary built elsewhere, e.g. from an older commit, to check it).
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("LEASEHOLD_BLACKBOX_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "leasehold")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/leasehold")
	cmd.Dir = ".." // the module root: this package is one level down
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// server is one `leasehold server` process, restartable with the same data
// directory and addresses.
type server struct {
	id                 string
	client, raft, http string
	dataDir, logPath   string
	bootstrap          string
	extra              []string // flags that differ between servers
	mu                 sync.Mutex
	cmd                *exec.Cmd
	done               chan struct{} // closed when cmd has exited
	paused             bool
	starts             int
}

type procCluster struct {
	t       *testing.T
	bin     string
	servers []*server
}

func (c *procCluster) endpoints() string {
	var eps []string
	for _, s := range c.servers {
		eps = append(eps, s.client)
	}
	return strings.Join(eps, ",")
}

func (c *procCluster) byID(id string) *server {
	for _, s := range c.servers {
		if s.id == id {
			return s
		}
	}
	return nil
}

// startCluster starts three servers bootstrapping one cluster, each with its
// own flags.
func startCluster(t *testing.T, bin, dir string, flags [3][]string) *procCluster {
	ports := freePorts(t, 9)
	c := &procCluster{t: t, bin: bin}
	var boot []string
	for i := range 3 {
		s := &server{
			id:      fmt.Sprint(i + 1),
			client:  fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			raft:    fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			http:    fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
			dataDir: filepath.Join(dir, fmt.Sprintf("data%d", i+1)),
			logPath: filepath.Join(dir, fmt.Sprintf("server%d.log", i+1)),
			extra:   flags[i],
		}
		boot = append(boot, s.id+"="+s.raft)
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		s.bootstrap = strings.Join(boot, ",")
	}
	t.Cleanup(c.killAll)
	for _, s := range c.servers {
		c.start(s)
	}
	return c
}

func (c *procCluster) start(s *server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	args := []string{"server", "--id", s.id, "--data-dir", s.dataDir,
		"--client-addr", s.client, "--raft-addr", s.raft, "--http-addr", s.http,
		"--bootstrap", s.bootstrap}
	args = append(args, s.extra...)
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Errorf("server %s log: %v", s.id, err)
		return
	}
	fmt.Fprintf(logf, "=== start %d: %s\n", s.starts, strings.Join(args, " "))
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, killed whole
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Errorf("start server %s: %v", s.id, err)
		return
	}
	s.starts++
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done, s.paused = cmd, done, false
}

// stop ends s with sig (SIGKILL: a crash; SIGTERM: a clean stop) and waits
// for it to exit.
func (c *procCluster) stop(s *server, sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT) // a paused server cannot handle SIGTERM
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// pause stops (SIGSTOP) or resumes (SIGCONT) s.
func (c *procCluster) pause(s *server, stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	s.paused = stop
}

func (c *procCluster) running(s *server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (c *procCluster) killAll() {
	for _, s := range c.servers {
		c.stop(s, syscall.SIGKILL)
	}
}

// logTails returns the last n lines of each server's log, for a failure report.
func (c *procCluster) logTails(n int) string {
	var b bytes.Buffer
	for _, s := range c.servers {
		data, _ := os.ReadFile(s.logPath)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- server %s (%s)\n%s\n", s.id, s.logPath, strings.Join(lines, "\n"))
	}
	return b.String()
}
