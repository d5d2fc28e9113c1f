package doclinks

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// Problem is one bad link: where it is and why it is bad.
type Problem struct {
	File   string // relative to the root
	Line   int
	Target string
	Why    string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %q: %s", p.File, p.Line, p.Target, p.Why)
}

var (
	// inlineLink matches [text](target) and ![alt](target); the target
	// ends at whitespace (an optional "title" follows) or ')'.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink matches a reference definition: [label]: target
	refLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s|$)`)
	scheme  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// Forbidden are strings no document may contain at all, linked or not: they
// name material that lives outside the repository.
var Forbidden = []string{"../shared", "/work/shared"}

// Files returns the Markdown files Check looks at: README.md at the root and
// every *.md under docs/, relative to root.
func Files(root string) ([]string, error) {
	var out []string
	if _, err := os.Stat(filepath.Join(root, "README.md")); err == nil {
		out = append(out, "README.md")
	}
	docs := filepath.Join(root, "docs")
	err := filepath.WalkDir(docs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return out, nil
}

// Check reads each file (relative to root) and reports every link that does
// not resolve inside root, every anchor that names no heading of its target
// document, and every mention of a Forbidden path. Links with a scheme
// (https:, mailto:) are not followed.
func Check(root string, files []string) ([]Problem, error) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	anchors := map[string]map[string]bool{} // file (abs) -> heading slugs
	var probs []Problem
	for _, f := range files {
		lines, err := readLines(filepath.Join(absRoot, f))
		if err != nil {
			return nil, err
		}
		inFence := false
		for i, line := range lines {
			for _, bad := range Forbidden {
				if strings.Contains(line, bad) {
					probs = append(probs, Problem{f, i + 1, bad, "names material outside the repository"})
				}
			}
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inFence = !inFence
				continue
			}
			if inFence {
				continue // code, not links
			}
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(stripCode(line), -1) {
				targets = append(targets, m[1])
			}
			if m := refLink.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, t := range targets {
				if why := resolve(absRoot, filepath.Join(absRoot, f), t, anchors); why != "" {
					probs = append(probs, Problem{f, i + 1, t, why})
				}
			}
		}
	}
	return probs, nil
}

// resolve returns why target, linked from the file at from, is broken ("" if
// it is fine).
func resolve(root, from, target string, anchors map[string]map[string]bool) string {
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return "" // a web address, not a file of this repository
	}
	path, frag, _ := strings.Cut(target, "#")
	var abs string
	switch {
	case path == "":
		abs = from // #anchor in the same document
	case strings.HasPrefix(path, "/"):
		return "absolute path: use a path relative to the document"
	default:
		abs = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "points outside the repository"
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "no such file in the repository"
	}
	if frag == "" || st.IsDir() || !strings.HasSuffix(abs, ".md") {
		return ""
	}
	if anchors[abs] == nil {
		lines, err := readLines(abs)
		if err != nil {
			return err.Error()
		}
		anchors[abs] = headingSlugs(lines)
	}
	if !anchors[abs][frag] {
		return "no heading with this anchor in " + filepath.ToSlash(rel)
	}
	return ""
}

// stripCode blanks inline code spans, where brackets are not links.
func stripCode(line string) string {
	var b strings.Builder
	in := false
	for _, r := range line {
		if r == '`' {
			in = !in
		}
		if in {
			b.WriteRune(' ')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headingSlugs are the anchors GitHub gives a document's headings:
// lower case, punctuation dropped, spaces to '-', repeats numbered.
func headingSlugs(lines []string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(l, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		s := b.String()
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func readLines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

// PackageTable returns the packages named in the first column of the table
// under the "## Packages" heading of the README at root (`pkg` cells).
func PackageTable(root string) ([]string, error) {
	lines, err := readLines(filepath.Join(root, "README.md"))
	if err != nil {
		return nil, err
	}
	var out []string
	in := false
	for _, l := range lines {
		if strings.HasPrefix(l, "## ") {
			in = strings.TrimSpace(l) == "## Packages"
			continue
		}
		if !in || !strings.HasPrefix(l, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(l, "| `"), "`")
		out = append(out, cell)
	}
	return out, nil
}

// Packages returns every directory under root holding Go files (the
// module's packages), as slash paths relative to root, skipping testdata,
// hidden directories and nested modules (a directory with its own go.mod,
// such as a forked dependency under third_party, is not this module's).
func Packages(root string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			if p != root {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); rel != "." && !seen[rel] {
			seen[rel] = true
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}
