package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runUntilExit runs `leasehold server args...` and waits for it to exit,
// returning its exit code and output; a server still running after 30s is
// killed and reported as -1.
func runUntilExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	s := &serverProc{id: "server", stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, append([]string{"server"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode(), s.stderr.String()
	case <-time.After(30 * time.Second):
		s.kill()
		return -1, s.stderr.String()
	}
}

// Issue 17 #8: a server removed from the cluster and restarted with --join
// looped forever, and its address registration was a configuration change
// (AddMember) that could re-add it. Now a removed server says so and exits
// with code 9, whether its log holds its removal (removed while running) or
// not (removed while down); the cluster never lists it again; and with a
// fresh data directory --join makes it a member again.
func TestRemovedServerSaysSoAndExits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five server processes")
	}
	dir := t.TempDir()
	type node struct {
		id    string
		addrs []string
		args  []string
	}
	mk := func(id string, extra ...string) node {
		a := freeAddrs(t, 3)
		return node{id, a, append([]string{"--id", id, "--data-dir", filepath.Join(dir, id), "--client-addr", a[0],
			"--raft-addr", a[1], "--http-addr", a[2]}, extra...)}
	}
	n1 := mk("node1")
	n1.args = append(n1.args, "--bootstrap", "node1="+n1.addrs[1])
	p1 := startServer(t, nil, n1.args...)
	ep := n1.addrs[0]
	n2 := mk("node2", "--join", ep)
	n3 := mk("node3", "--join", ep, "--join-as", "nonvoter")
	p2 := startServer(t, nil, n2.args...)
	p3 := startServer(t, nil, n3.args...)
	listed := func() map[string]string {
		r := cli(t, ep, "member", "list", "--json")
		out := map[string]string{}
		for _, m := range members(t, r) {
			out[m["id"].(string)], _ = m["client_addr"].(string)
		}
		return out
	}
	all := []*serverProc{p1, p2, p3}
	waitFor(t, 30*time.Second, "three registered members", all, func() bool {
		m := listed()
		return len(m) == 3 && m["node2"] == n2.addrs[0] && m["node3"] == n3.addrs[0]
	})

	// Removed while running: its log ends with its removal.
	expect(t, cli(t, ep, "member", "remove", "node2"), 0, "remove node2")
	p2.stop(t)
	// Removed while down: its log still lists it as a member.
	p3.stop(t)
	expect(t, cli(t, ep, "member", "remove", "node3"), 0, "remove node3")

	for _, n := range []node{n2, n3} {
		code, out := runUntilExit(t, n.args...)
		if code != 9 || !strings.Contains(out, "removed from the cluster") {
			t.Errorf("%s restarted after its removal: exit code %d, want 9 saying it was removed\n%s", n.id, code, out)
		}
	}
	if m := listed(); len(m) != 1 {
		t.Fatalf("member list after the removed servers restarted: %v", m)
	}

	// Asked explicitly: a fresh data directory and --join.
	n2.args = append(n2.args, "--data-dir", filepath.Join(dir, "node2-fresh"))
	p2 = startServer(t, nil, n2.args...)
	waitFor(t, 30*time.Second, "node2 a member again", []*serverProc{p1, p2}, func() bool { return listed()["node2"] == n2.addrs[0] })
}
