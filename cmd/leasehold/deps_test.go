package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forbiddenInServer are modules the server binary must not link: the
// benchmark's peer database and its plotting library live in
// cmd/leasehold-bench.
var forbiddenInServer = []string{"go.etcd.io/etcd/server", "gonum.org/"}

// TestServerBinaryLinksNoBenchPeer builds the server binary and checks that
// `go version -m` lists none of the benchmark's modules.
func TestServerBinaryLinksNoBenchPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	bin := filepath.Join(t.TempDir(), "leasehold")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if bad := linkedModules(string(out), forbiddenInServer); len(bad) > 0 {
		t.Errorf("the server binary links %v; the benchmark's dependencies belong in cmd/leasehold-bench", bad)
	}
	if !strings.Contains(string(out), "github.com/hashicorp/raft") {
		t.Errorf("go version -m output lists no hashicorp/raft; the check reads the wrong thing:\n%s", out)
	}

	// Without leasehold-bench beside it or on PATH, `leasehold bench` says
	// in one line how to run the benchmark.
	cmd := exec.Command(bin, "bench", "--scenario", "steady")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "go run ./cmd/leasehold-bench") || strings.Count(strings.TrimSpace(string(msg)), "\n") != 0 {
		t.Errorf("leasehold bench without leasehold-bench: err %v, output %q", err, msg)
	}
}

// linkedModules returns the dep/mod lines of `go version -m` output whose
// module path starts with one of prefixes.
func linkedModules(versionM string, prefixes []string) []string {
	var bad []string
	for line := range strings.Lines(versionM) {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "dep" && f[0] != "mod" && f[0] != "=>") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(f[1], p) {
				bad = append(bad, f[1])
			}
		}
	}
	return bad
}

// TestLinkedModulesCatchesPeer: the parser finds a forbidden module in
// `go version -m` output (a planted line), so the test above can fail.
func TestLinkedModulesCatchesPeer(t *testing.T) {
	planted := "bin: go1.26\n\tpath\tgithub.com/leasehold/leasehold/cmd/leasehold\n" +
		"\tdep\tgithub.com/hashicorp/raft\tv1.8.0\th1:x\n" +
		"\tdep\tgo.etcd.io/etcd/server/v3\tv3.7.3\th1:y\n\tdep\tgonum.org/v1/plot\tv0.17.0\th1:z\n"
	if got := linkedModules(planted, forbiddenInServer); len(got) != 2 {
		t.Errorf("linkedModules found %v, want the etcd server and gonum", got)
	}
}
