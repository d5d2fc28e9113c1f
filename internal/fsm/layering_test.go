package fsm

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The replicated core (fsm, the domain package lease, the log codec
// logentry) decides every apply result, so it must depend on nothing a
// server's role, configuration or environment can change, and on nothing
// that does I/O (issue 15). This test fails when its code reads the wall
// clock or sleeps, or when any of them comes to import, directly or through
// another package:
//   - a package of this module outside the core (the admission queue,
//     raftnode, the gRPC server, node, settings, ...),
//   - any package outside the standard library (gRPC among them),
//   - a standard package that does I/O, spawns processes or draws
//     randomness (os, os/exec, net, syscall, log, math/rand, crypto/rand...).
func TestCoreImportsNothingLeaderOnlyOrDoingIO(t *testing.T) {
	const module = "github.com/leasehold/leasehold/"
	core := []string{"internal/fsm", "lease", "internal/logentry"}
	allowed := map[string]bool{"internal/binenc": true}
	for _, p := range core {
		allowed[p] = true
	}
	forbiddenStd := regexp.MustCompile(`^(os|os/.*|net|net/.*|syscall|io/ioutil|io/fs|path/filepath|log|log/.*|math/rand|math/rand/.*|crypto/rand|plugin|runtime/cgo|unsafe)$`)
	wallClock := regexp.MustCompile(`\btime\.(Now|Since|Until|Sleep|After|AfterFunc|Tick|NewTicker|NewTimer)\(`)

	args := []string{"list", "-deps", "-json=ImportPath,Standard,Imports,Dir,GoFiles"}
	for _, p := range core {
		args = append(args, module+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath string
		Standard   bool
		Imports    []string
		Dir        string
		GoFiles    []string
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Standard {
			continue
		}
		rel, ours := strings.CutPrefix(p.ImportPath, module)
		if !ours {
			t.Errorf("the replicated core depends on %s, outside the standard library", p.ImportPath)
			continue
		}
		if !allowed[rel] {
			t.Errorf("the replicated core depends on %s (only %v may be)", p.ImportPath, keys(allowed))
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if forbiddenStd.MatchString(imp) {
				t.Errorf("%s imports %s", p.ImportPath, imp)
			}
		}
		for _, f := range p.GoFiles {
			src, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if loc := wallClock.FindIndex(src); loc != nil {
				t.Errorf("%s/%s reads the wall clock or sleeps: %s", p.ImportPath, f, src[loc[0]:loc[1]])
			}
		}
	}
	if seen < len(core) {
		t.Fatalf("go list reported %d core packages, want at least %d", seen, len(core))
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
