package doclinks

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRepositoryLinks is the check CI runs: every relative link in README.md
// and docs/ resolves inside this repository.
func TestRepositoryLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal("repository root not found:", err)
	}
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 || files[0] != "README.md" {
		t.Fatalf("expected README.md and docs/*.md, found %v", files)
	}
	probs, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
}

// TestCatchesPlantedBreakage plants each kind of bad link in a scratch
// repository and checks the checker reports exactly those.
func TestCatchesPlantedBreakage(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n")
	write("pkg/a.go", "package pkg\n")
	write("README.md", strings.Join([]string{
		"# Title",
		"[ok](docs/design.md) [ok dir](pkg) [ok anchor](docs/design.md#the-write-path) [self](#title)",
		"[web](https://example.com/x) `[not a link](nowhere.md)`",
		"[broken](docs/missing.md)",                // 4
		"[outside](../shared/DESIGN.md)",           // 5: outside, and forbidden text
		"[bad anchor](docs/design.md#no-such-one)", // 6
		"```",
		"[in a code block](ignored.md)",
		"```",
		"[ref]: docs/gone.md", // 10
	}, "\n"))
	write("docs/design.md", "# Design\n\n## The write path\n\n[up](../README.md) [abs](/etc/passwd)\nsee /work/shared/CLI.md\n")
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	probs, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"README.md:4:docs/missing.md":            true,
		"README.md:5:../shared/DESIGN.md":        true,
		"README.md:5:../shared":                  true,
		"README.md:6:docs/design.md#no-such-one": true,
		"README.md:10:docs/gone.md":              true,
		"docs/design.md:5:/etc/passwd":           true,
		"docs/design.md:6:/work/shared":          true,
	}
	got := map[string]bool{}
	for _, p := range probs {
		got[p.File+":"+itoa(p.Line)+":"+p.Target] = true
		t.Log(p)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missed %s", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("false alarm %s", k)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
