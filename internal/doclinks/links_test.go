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
	// The README is for a newcomer: detail belongs in docs/.
	if lines, err := readLines(filepath.Join(root, "README.md")); err != nil || len(lines) > 250 {
		t.Errorf("README.md has %d lines (%v); keep it to 250 and move detail to docs/", len(lines), err)
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

// TestPackageTableMatchesPackages: the README's package table names every
// package of the module, and nothing else.
func TestPackageTableMatchesPackages(t *testing.T) {
	root := filepath.Join("..", "..")
	table, err := PackageTable(root)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Packages(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range diff(pkgs, table) {
		t.Errorf("package %s is missing from the README's package table", p)
	}
	for _, p := range diff(table, pkgs) {
		t.Errorf("the README's package table lists %s, which is not a package", p)
	}
}

// TestPackageTableCheckCatchesDrift plants a package the table omits and a
// row for a package that does not exist.
func TestPackageTableCheckCatchesDrift(t *testing.T) {
	root := t.TempDir()
	for p, s := range map[string]string{
		"README.md":       "# X\n\n## Packages\n\n| package | what |\n|---|---|\n| `a` | listed |\n| `gone` | removed |\n\n## Next\n\n| `notpkg` | other table |\n",
		"a/a.go":          "package a\n",
		"b/c/c.go":        "package c\n",
		"a/testdata/x.go": "package x\n",
		// A nested module (a forked dependency) is not one of the module's
		// packages, nor are its subdirectories.
		"third_party/dep/go.mod":   "module example.com/dep\n",
		"third_party/dep/dep.go":   "package dep\n",
		"third_party/dep/sub/s.go": "package sub\n",
	} {
		p = filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	table, err := PackageTable(root)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Packages(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(diff(pkgs, table), ","); got != "b/c" {
		t.Errorf("missing rows: %q, want b/c", got)
	}
	if got := strings.Join(diff(table, pkgs), ","); got != "gone" {
		t.Errorf("stale rows: %q, want gone", got)
	}
}

// diff returns the elements of a not in b.
func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}
