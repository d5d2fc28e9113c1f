package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The operator path of docs/operations.md, run from the built binary: each
// server is a `leasehold server --config FILE` process whose config file is
// deploy/leasehold.json with only the id, the addresses and the file paths
// changed, exactly as the document tells an operator to do. The template
// turns on bearer tokens, TLS on the API and mutual TLS between servers, so
// one cluster covers deployment, auth and TLS.

const (
	opsAdmin = "adm-0123456789"
	opsAgent = "agt-0123456789"
	opsKey   = "app/model-1/db"
)

// serverProc is one `leasehold server` child process.
type serverProc struct {
	id                     string
	clientAddr, raftAddr   string
	httpAddr, dataDir, cfg string
	cmd                    *exec.Cmd
	stderr                 *syncBuffer
	exited                 chan struct{}
	exitErr                error
}

// opsEnv is the operator's machine: certificates, tokens, the template.
type opsEnv struct {
	dir, certs, tokens string
	template           map[string]any
}

// freeAddrs returns n loopback addresses free right now. Holding all the
// listeners at once keeps the ports distinct; a port taken between close and
// the child's bind makes the child exit, which waitFor reports.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	dir := t.TempDir()
	e := &opsEnv{dir: dir, certs: filepath.Join(dir, "certs"), tokens: filepath.Join(dir, "tokens")}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "leasehold.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &e.template); err != nil {
		t.Fatalf("deploy/leasehold.json: %v", err)
	}
	tokens := fmt.Sprintf("# role token\nadmin %s\nagent %s\n", opsAdmin, opsAgent)
	if err := os.WriteFile(e.tokens, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// config writes the template with this server's id, addresses and paths;
// bootstrap "" removes the key (a server that joins).
func (e *opsEnv) config(t *testing.T, id, cert, bootstrap string, addrs []string) *serverProc {
	t.Helper()
	s := &serverProc{id: id, clientAddr: addrs[0], raftAddr: addrs[1], httpAddr: addrs[2],
		dataDir: filepath.Join(e.dir, "data-"+id+"-"+filepath.Base(addrs[1])), stderr: &syncBuffer{}, exited: make(chan struct{})}
	m := map[string]any{}
	for k, v := range e.template {
		m[k] = v
	}
	m["id"], m["data_dir"] = id, s.dataDir
	m["client_addr"], m["raft_addr"], m["http_addr"] = s.clientAddr, s.raftAddr, s.httpAddr
	m["tokens_file"] = e.tokens
	m["tls_cert"], m["tls_key"] = filepath.Join(e.certs, cert+".pem"), filepath.Join(e.certs, cert+"-key.pem")
	m["raft_tls_cert"], m["raft_tls_key"] = m["tls_cert"], m["tls_key"]
	m["raft_tls_ca"] = filepath.Join(e.certs, "server-ca.pem")
	m["tls_client_ca"] = filepath.Join(e.certs, "api-client-ca.pem")
	if bootstrap == "" {
		delete(m, "bootstrap")
	} else {
		m["bootstrap"] = bootstrap
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	s.cfg = filepath.Join(e.dir, "leasehold-"+id+"-"+filepath.Base(addrs[1])+".json")
	if err := os.WriteFile(s.cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs `leasehold server --config FILE extra...`; the child is killed
// when the test ends.
func (s *serverProc) start(t *testing.T, env []string, extra ...string) {
	t.Helper()
	s.cmd = exec.Command(binary, append([]string{"server", "--config", s.cfg}, extra...)...)
	s.cmd.Env = append(append(os.Environ(), "LEASEHOLD_TOKEN=", "LEASEHOLD_TOKENS=", "LEASEHOLD_TOKENS_FILE="), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.kill() })
}

func (s *serverProc) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// stop sends SIGTERM, as systemctl stop does, and waits for a clean exit.
func (s *serverProc) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit within 20s of SIGTERM\n%s", s.id, s.stderr)
	}
	if s.exitErr != nil {
		t.Fatalf("%s exited with %v after SIGTERM\n%s", s.id, s.exitErr, s.stderr)
	}
}

// op runs a client command the way an operator would over TLS: the CA and
// the client certificate, the given token (none if empty) and endpoints.
func (e *opsEnv) op(t *testing.T, token, eps string, args ...string) cliResult {
	t.Helper()
	args = append(args, "--endpoints", eps, "--token", token,
		"--tls-ca", filepath.Join(e.certs, "server-ca.pem"),
		"--tls-cert", filepath.Join(e.certs, "client.pem"), "--tls-key", filepath.Join(e.certs, "client-key.pem"))
	return cli(t, eps, args...)
}

// waitFor polls cond (which runs CLI commands, so not too often) until it
// holds, failing after timeout; every process in procs must stay up.
func waitFor(t *testing.T, timeout time.Duration, what string, procs []*serverProc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		for _, p := range procs {
			select {
			case <-p.exited:
				t.Fatalf("waiting for %s: %s exited: %v\n%s", what, p.id, p.exitErr, p.stderr)
			default:
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "--- %s\n%s", p.id, p.stderr)
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", timeout, what, logs.String())
		}
		<-tick.C
	}
}

func members(t *testing.T, r cliResult) []map[string]any {
	t.Helper()
	var out []map[string]any
	ms, _ := decode(t, r)["members"].([]any) // none in an error
	for _, m := range ms {
		out = append(out, m.(map[string]any))
	}
	return out
}

func TestOperatorPath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six server processes (~1 min)")
	}
	e := newOpsEnv(t)

	// Step 1 of the deployment: certificates for every server (and the one
	// added later) valid for loopback.
	r := cli(t, "", "certs", "--dir", e.certs, "--name", "node1,node2,node3,node4", "--hosts", "localhost,127.0.0.1")
	expect(t, r, 0, "certs")
	for _, f := range []string{"server-ca.pem", "client-ca.pem", "api-client-ca.pem", "node1.pem", "node4-key.pem", "client.pem", "client-key.pem"} {
		if _, err := os.Stat(filepath.Join(e.certs, f)); err != nil {
			t.Fatalf("certs: %v", err)
		}
	}

	// Steps 3-5: the same bootstrap list on all three, from the template.
	var procs []*serverProc
	addrs := make([][]string, 3)
	var boot, eps []string
	for i := range 3 {
		addrs[i] = freeAddrs(t, 3)
		boot = append(boot, fmt.Sprintf("node%d=%s", i+1, addrs[i][1]))
		eps = append(eps, addrs[i][0])
	}
	for i := range 3 {
		id := fmt.Sprintf("node%d", i+1)
		p := e.config(t, id, id, strings.Join(boot, ","), addrs[i])
		p.start(t, nil)
		procs = append(procs, p)
	}
	all := strings.Join(eps, ",")
	var leaderID string
	waitFor(t, 30*time.Second, "a leader in `leasehold status`", procs, func() bool {
		r := e.op(t, opsAdmin, all, "status", "--json")
		if r.code != 0 {
			return false
		}
		m := decode(t, r)
		leaderID, _ = m["leader_id"].(string)
		ms, _ := m["members"].([]any)
		return strings.HasPrefix(leaderID, "node") && len(ms) == 3
	})
	// Every server registers its own addresses, so `member list` shows
	// where each serves clients (the followers' were missing before).
	waitFor(t, 20*time.Second, "every server's client address in `member list`", procs, func() bool {
		r := e.op(t, opsAdmin, all, "member", "list", "--json")
		if r.code != 0 {
			return false
		}
		got := map[any]any{}
		for _, m := range members(t, r) {
			got[m["id"]] = m["client_addr"]
		}
		return len(got) == 3 && got["node1"] == eps[0] && got["node2"] == eps[1] && got["node3"] == eps[2]
	})
	r = e.op(t, opsAgent, all, "claim", opsKey, "unit/0", "--duration", "2m", "--json")
	expect(t, r, 0, "agent claim")
	tok := decode(t, r)["token"].(float64)
	if tok < 1 {
		t.Fatalf("claim token %v", tok)
	}
	assertHeld := func(t *testing.T, eps string) {
		t.Helper()
		r := e.op(t, opsAgent, eps, "get", opsKey, "--json")
		expect(t, r, 0, "get")
		if m := decode(t, r); m["found"] != true || m["holder"] != "unit/0" || m["token"].(float64) != tok {
			t.Fatalf("get JSON %v, want unit/0 with token %v", m, tok)
		}
	}

	ok := t.Run("TLS", func(t *testing.T) {
		// Without TLS the client cannot talk to the TLS API: unavailable.
		r := cli(t, all, "get", opsKey, "--token", opsAgent, "--json", "--timeout", "3s")
		errJSON(t, expectCode(t, r, 5), "unavailable")
		// A CA that did not sign the servers' certificates: unavailable too.
		other := filepath.Join(e.dir, "other-certs")
		expect(t, cli(t, "", "certs", "--dir", other, "--name", "x"), 0, "other certs")
		r = cli(t, all, "get", opsKey, "--token", opsAgent, "--tls-ca", filepath.Join(other, "server-ca.pem"), "--timeout", "3s")
		expectCode(t, r, 5)
		assertHeld(t, all)
	})
	ok = ok && t.Run("Auth", func(t *testing.T) {
		expect(t, e.op(t, opsAgent, all, "claim", "app/model-1/web", "unit/1", "--duration", "30s"), 0, "agent claim")
		r := e.op(t, opsAgent, all, "settings", "set", "max_duration=2m", "--json")
		errJSON(t, expectCode(t, r, 8), "permission_denied")
		errJSON(t, expectCode(t, e.op(t, opsAgent, all, "pin", opsKey, "upgrade", "--json"), 8), "permission_denied")
		expectCode(t, e.op(t, opsAgent, all, "member", "remove", "node1"), 8)
		expectCode(t, e.op(t, opsAgent, all, "snapshot", "save", filepath.Join(e.dir, "agent.snap")), 8)
		errJSON(t, expectCode(t, e.op(t, "", all, "claim", opsKey, "unit/9", "--duration", "30s", "--json"), 8), "unauthenticated")
		expectCode(t, e.op(t, "wrong-token", all, "get", opsKey), 8)
		expect(t, e.op(t, opsAdmin, all, "pin", opsKey, "upgrade"), 0, "admin pin")
		expect(t, e.op(t, opsAdmin, all, "unpin", opsKey, "upgrade"), 0, "admin unpin")
	})
	ok = ok && t.Run("Settings", func(t *testing.T) {
		r := e.op(t, opsAdmin, all, "settings", "get", "--json")
		expect(t, r, 0, "settings get")
		m := decode(t, r)
		s, _ := m["settings"].(map[string]any)
		if s["max_duration"] == nil || s["min_duration"] == nil || s["tick_interval"] == nil {
			t.Fatalf("settings get JSON %v", m)
		}
		version, _ := m["version"].(float64)
		r = e.op(t, opsAdmin, all, "settings", "set", "max_duration=1m", "--json", "--if-version", strconv.Itoa(int(version)))
		expect(t, r, 0, "settings set")
		if m := decode(t, r); m["replicated"] != true || m["version"] != version+1 {
			t.Fatalf("settings set JSON %v (read at version %v)", m, version)
		}
		// A second change based on the same, now stale, version is refused.
		r = e.op(t, opsAdmin, all, "settings", "set", "max_duration=3m", "--json", "--if-version", strconv.Itoa(int(version)))
		if e := errJSON(t, expectCode(t, r, 2), "invalid_argument"); e["field"] != "settings_version" {
			t.Fatalf("stale settings change: %v", e)
		}
		for _, ep := range eps {
			r := e.op(t, opsAgent, ep, "claim", "app/model-2/db", "unit/0", "--duration", "90s", "--json")
			if e := errJSON(t, expectCode(t, r, 2), "invalid_argument"); e["field"] != "duration" {
				t.Fatalf("claim above max_duration via %s: %v", ep, e)
			}
			r = e.op(t, opsAdmin, ep, "settings", "get", "--json")
			expect(t, r, 0, "settings get "+ep)
			if v := decode(t, r)["settings"].(map[string]any)["max_duration"]; v != "1m0s" && v != "1m" {
				t.Fatalf("max_duration via %s is %v", ep, v)
			}
		}
		expect(t, e.op(t, opsAgent, all, "claim", "app/model-2/db", "unit/0", "--duration", "50s"), 0, "claim within max")
		for _, bad := range []string{"max_duration=banana", "min_duration=2m", "max_queued_ops=-1"} {
			r := e.op(t, opsAdmin, all, "settings", "set", bad, "--json")
			key, _, _ := strings.Cut(bad, "=")
			e := errJSON(t, expectCode(t, r, 2), "invalid_argument")
			if e["field"] != key && !strings.Contains(e["message"].(string), key) {
				t.Fatalf("settings set %s: error %v does not name %s", bad, e, key)
			}
		}
	})
	ok = ok && t.Run("JoinAndRemove", func(t *testing.T) {
		// A new server: the template without bootstrap, --join any member,
		// LEASEHOLD_TOKEN an admin token because auth is on.
		p := e.config(t, "node4", "node4", "", freeAddrs(t, 3))
		p.start(t, []string{"LEASEHOLD_TOKEN=" + opsAdmin}, "--join", eps[1])
		waitFor(t, 30*time.Second, "node4 in `member list`", append(procs, p), func() bool {
			r := e.op(t, opsAdmin, all, "member", "list", "--json")
			return r.code == 0 && len(members(t, r)) == 4
		})
		r := e.op(t, opsAdmin, all, "member", "list", "--json")
		for _, m := range members(t, r) {
			if ca, _ := m["client_addr"].(string); ca == "" || m["raft_addr"] == "" || m["voter"] != true {
				t.Fatalf("member list: %v", m)
			}
			if m["id"] == "node4" && (m["client_addr"] != p.clientAddr || m["raft_addr"] != p.raftAddr) {
				t.Fatalf("node4 listed as %v, runs on %s/%s", m, p.clientAddr, p.raftAddr)
			}
		}
		// The new server answers reads with the cluster's state.
		waitFor(t, 10*time.Second, "node4 serving the lease", nil, func() bool {
			r := e.op(t, opsAgent, p.clientAddr, "get", opsKey, "--stale", "--json")
			return r.code == 0 && decode(t, r)["token"] == tok
		})
		expect(t, e.op(t, opsAdmin, all, "member", "remove", "node4"), 0, "member remove")
		r = e.op(t, opsAdmin, all, "member", "list", "--json")
		expect(t, r, 0, "member list")
		if ms := members(t, r); len(ms) != 3 {
			t.Fatalf("after remove: %v", ms)
		}
		p.stop(t)
		assertHeld(t, all)
	})
	if !ok {
		return
	}
	t.Run("SnapshotRestore", func(t *testing.T) {
		file := filepath.Join(e.dir, "backup.snap")
		r := e.op(t, opsAdmin, all, "snapshot", "save", file, "--json")
		expect(t, r, 0, "snapshot save")
		if m := decode(t, r); m["bytes"].(float64) <= 0 || m["file"] != file {
			t.Fatalf("snapshot save JSON %v", m)
		}
		// Disaster recovery step 1: one new server, its own bootstrap.
		a := freeAddrs(t, 3)
		p := e.config(t, "node1", "node1", "", a)
		p.start(t, nil, "--bootstrap", "node1="+a[1], "--restore-snapshot", file)
		waitFor(t, 30*time.Second, "the restored server serving the lease", []*serverProc{p}, func() bool {
			r := e.op(t, opsAgent, p.clientAddr, "get", opsKey, "--json")
			return r.code == 0 && decode(t, r)["found"] == true
		})
		assertHeld(t, p.clientAddr)
		r = e.op(t, opsAdmin, p.clientAddr, "settings", "get", "--json")
		expect(t, r, 0, "restored settings")
		if v := decode(t, r)["settings"].(map[string]any)["max_duration"]; v != "1m0s" && v != "1m" {
			t.Fatalf("restored max_duration %v, want the saved 1m", v)
		}
		r = e.op(t, opsAdmin, p.clientAddr, "member", "list", "--json")
		expect(t, r, 0, "restored member list")
		if ms := members(t, r); len(ms) != 1 || ms[0]["client_addr"] != p.clientAddr || ms[0]["leader"] != true {
			t.Fatalf("restored member list %v, want only the new node1 at %s", ms, p.clientAddr)
		}
		// A new claim's token continues above the saved ones.
		r = e.op(t, opsAgent, p.clientAddr, "claim", "app/model-3/db", "unit/0", "--duration", "30s", "--json")
		expect(t, r, 0, "claim after restore")
		if nt := decode(t, r)["token"].(float64); nt <= tok {
			t.Fatalf("token after restore %v, not above the saved %v", nt, tok)
		}
		if _, err := os.Stat(filepath.Join(p.dataDir, "restored-from-snapshot")); err != nil {
			t.Fatalf("restore marker: %v", err)
		}
		// Step 2: another server joins the restored one, authenticating
		// with an admin token of its own tokens file (no LEASEHOLD_TOKEN),
		// and receives the restored state.
		q := e.config(t, "node2", "node2", "", freeAddrs(t, 3))
		q.start(t, nil, "--join", p.clientAddr)
		waitFor(t, 30*time.Second, "node2 joined to the restored server", []*serverProc{p, q}, func() bool {
			r := e.op(t, opsAdmin, p.clientAddr, "member", "list", "--json")
			ms := members(t, r)
			return r.code == 0 && len(ms) == 2 && (ms[0]["client_addr"] == q.clientAddr || ms[1]["client_addr"] == q.clientAddr)
		})
		waitFor(t, 10*time.Second, "node2 serving the restored lease", nil, func() bool {
			r := e.op(t, opsAgent, q.clientAddr, "get", opsKey, "--stale", "--json")
			return r.code == 0 && decode(t, r)["token"] == tok
		})
	})
}
