package clock

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The repository has one clock interface (this package's) and one fake
// (clocktest.Fake): a package that declares its own clock interface or fake
// clock again splits what one fake should drive.
func TestOneClockInterfaceAndOneFake(t *testing.T) {
	own := regexp.MustCompile(`(?m)^type\s+\w*Clock\s+interface\b|^type\s+\w*[fF]ake\w*Clock\s+struct\b|^type\s+[fF]ake\w*Timer\s+struct\b`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasPrefix(filepath.ToSlash(path), "../../internal/clock/") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if m := own.Find(src); m != nil {
			t.Errorf("%s declares %q: use internal/clock's Clock and clocktest.Fake", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
