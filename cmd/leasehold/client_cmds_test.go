package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

// binary is the leasehold binary built once for the CLI tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "leasehold-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "leasehold")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the binary with args against endpoints and returns its exit
// code and output.
func cli(t *testing.T, endpoints string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "LEASEHOLD_ENDPOINTS="+endpoints, "LEASEHOLD_TOKEN=")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := cliResult{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

func decode(t *testing.T, r cliResult) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &m); err != nil {
		t.Fatalf("not one JSON object: %q (stderr %q)", r.stdout, r.stderr)
	}
	return m
}

func expect(t *testing.T, r cliResult, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
}

func errJSON(t *testing.T, r cliResult, code string) map[string]any {
	t.Helper()
	e, _ := decode(t, r)["error"].(map[string]any)
	if e == nil || e["code"] != code || e["message"] == "" {
		t.Fatalf("error JSON %q, want code %s", r.stdout, code)
	}
	return e
}

func startCluster(t *testing.T, n int, opts grpcserver.Options) (*servertest.Cluster, string) {
	c := servertest.NewCluster(n)
	return c, strings.Join(servertest.Start(t, c, opts), ",")
}

func TestCLIWritesAndReads(t *testing.T) {
	c, eps := startCluster(t, 3, grpcserver.Options{})
	c.SetLeader("n2")
	const k = "app/model-1/mysql"

	r := cli(t, eps, "claim", k, "unit/0", "--duration", "30s", "--json")
	expect(t, r, 0, "claim")
	m := decode(t, r)
	if m["key"] != k || m["holder"] != "unit/0" || m["result"] != "granted" || m["token"].(float64) < 1 || m["expires_in_ms"].(float64) <= 29000 {
		t.Fatalf("claim JSON %v", m)
	}
	r = cli(t, eps, "claim", k, "unit/0", "--duration", "40s", "--json")
	expect(t, r, 0, "re-claim")
	if m := decode(t, r); m["result"] != "extended" {
		t.Fatalf("re-claim JSON %v", m)
	}
	r = cli(t, eps, "claim", k, "unit/1", "--duration", "30s", "--json")
	expect(t, r, 3, "denied")
	if e := errJSON(t, r, "denied"); e["holder"] != "unit/0" || e["expires_in_ms"].(float64) <= 0 || e["retryable"] != false {
		t.Fatalf("denied JSON %v", e)
	}
	expect(t, cli(t, eps, "claim", k, "unit/1", "--duration", "30s"), 3, "denied (text)")
	r = cli(t, eps, "extend", k, "unit/1", "--duration", "30s", "--json")
	expect(t, r, 4, "not held")
	errJSON(t, r, "not_held")
	r = cli(t, eps, "extend", k, "unit/0", "--duration", "50s")
	expect(t, r, 0, "extend")
	if !strings.Contains(r.stdout, "extended "+k) {
		t.Fatalf("extend text %q", r.stdout)
	}
	expect(t, cli(t, eps, "pin", k, "upgrade"), 0, "pin")

	r = cli(t, eps, "get", k, "--json")
	expect(t, r, 0, "get")
	if m := decode(t, r); m["found"] != true || m["holder"] != "unit/0" || m["pinned"] != true || m["server_id"] != "n2" {
		t.Fatalf("get JSON %v", m)
	}
	r = cli(t, eps, "get", k, "--stale")
	expect(t, r, 0, "stale get")
	if !strings.Contains(r.stdout, "holder=unit/0") {
		t.Fatalf("get text %q", r.stdout)
	}
	expect(t, cli(t, eps, "claim", "app/model-1/pg", "unit/3", "--duration", "30s"), 0, "claim 2")
	r = cli(t, eps, "list", "app/model-1", "--json", "--page-size", "1")
	expect(t, r, 0, "list")
	if ls := decode(t, r)["leases"].([]any); len(ls) != 2 {
		t.Fatalf("list JSON %q", r.stdout)
	}
	expect(t, cli(t, eps, "unpin", k, "upgrade"), 0, "unpin")
	r = cli(t, eps, "revoke", k, "unit/0", "--json")
	expect(t, r, 0, "revoke")
	if m := decode(t, r); m["result"] != "revoked" {
		t.Fatalf("revoke JSON %v", m)
	}
	r = cli(t, eps, "get", k)
	expect(t, r, 0, "get absent")
	if !strings.Contains(r.stdout, "not held") {
		t.Fatalf("get absent %q", r.stdout)
	}

	r = cli(t, eps, "status", "--json")
	expect(t, r, 0, "status")
	if m := decode(t, r); m["leader_id"] != "n2" || len(m["servers"].([]any)) != 3 || len(m["members"].([]any)) != 3 {
		t.Fatalf("status JSON %v", m)
	}
	r = cli(t, eps, "status")
	expect(t, r, 0, "status text")
	if !strings.Contains(r.stdout, "leader: n2") {
		t.Fatalf("status text %q", r.stdout)
	}
}

func TestCLIWatchAndWait(t *testing.T) {
	c, eps := startCluster(t, 1, grpcserver.Options{})
	const k = "app/m/x"
	expect(t, cli(t, eps, "claim", k, "u/0", "--duration", "30s"), 0, "claim")
	r := cli(t, eps, "watch", "app", "--from", "1", "--count", "1", "--json")
	expect(t, r, 0, "watch")
	if m := decode(t, r); m["kind"] != "claimed" || m["key"] != k || m["index"].(float64) != 1 {
		t.Fatalf("watch JSON %v", m)
	}
	// wait --claim: the waiter either sees the revoke, or reads after it.
	done := make(chan cliResult, 1)
	go func() { done <- cli(t, eps, "wait", k, "--claim", "u/1", "--duration", "30s", "--json") }()
	expect(t, cli(t, eps, "revoke", k, "u/0"), 0, "revoke")
	r = <-done
	expect(t, r, 0, "wait --claim")
	if m := decode(t, r); m["holder"] != "u/1" || m["result"] != "granted" {
		t.Fatalf("wait --claim JSON %v", m)
	}
	r = cli(t, eps, "wait", k, "--max-wait", "200ms", "--json")
	expect(t, r, 7, "wait gives up")
	errJSON(t, r, "deadline_exceeded")
	_ = c
}

// TestCLIExitCodes checks the exit code and JSON code of each error class.
func TestCLIExitCodes(t *testing.T) {
	c, eps := startCluster(t, 1, grpcserver.Options{})
	claim := []string{"claim", "a/b/c", "h", "--duration", "10s", "--json"}

	errJSON(t, expectCode(t, cli(t, eps, "claim", "a/b/c", "h", "--duration", "1h", "--json"), 2), "invalid_argument")
	errJSON(t, expectCode(t, cli(t, eps, "claim", "a/b", "h", "--duration", "10s", "--json"), 2), "invalid_argument")
	expectCode(t, cli(t, eps, "claim", "a/b/c"), 2) // usage
	expectCode(t, cli(t, eps, "claim", "a/b/c", "h"), 2)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	errJSON(t, expectCode(t, cli(t, dead, claim...), 5), "unavailable")

	c.SetOnWrite(func(context.Context, string, []lease.Command) error {
		return &lease.Error{Code: lease.CodeOverloaded, RetryAfter: time.Millisecond}
	})
	if e := errJSON(t, expectCode(t, cli(t, eps, claim...), 6), "overloaded"); e["retry_after_ms"].(float64) != 1 {
		t.Fatalf("overloaded JSON %v", e)
	}
	c.SetOnWrite(func(context.Context, string, []lease.Command) error {
		return lease.Errorf(lease.CodeDeadlineExceeded, "queue wait exceeds the deadline")
	})
	errJSON(t, expectCode(t, cli(t, eps, claim...), 7), "deadline_exceeded")
	c.SetOnWrite(nil)
	c.SetLeader("")
	errJSON(t, expectCode(t, cli(t, eps, claim...), 5), "not_leader")

	_, authed := startCluster(t, 1, grpcserver.Options{Tokens: map[string]grpcserver.Role{"s3cret": grpcserver.RoleAgent}})
	errJSON(t, expectCode(t, cli(t, authed, claim...), 8), "unauthenticated")
	errJSON(t, expectCode(t, cli(t, authed, "pin", "a/b/c", "e", "--token", "s3cret", "--json"), 8), "permission_denied")
	expectCode(t, cli(t, authed, append(claim, "--token", "s3cret")...), 0)
}

func expectCode(t *testing.T, r cliResult, code int) cliResult {
	t.Helper()
	expect(t, r, code, "exit code")
	return r
}
