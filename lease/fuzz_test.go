package lease

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseKey checks that ParseKey never panics, that every key it accepts
// is valid and renders back to the input, and that it rejects with an
// InvalidArgument naming a field.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"ns/grp/name", "a/b/c/d", "//", "a/b/", "ns/grp", "", "a/b/\xff", "a/b/ c", "a\u00a0/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			var le *Error
			if !errors.As(err, &le) || le.Code != CodeInvalidArgument || le.Field == "" {
				t.Fatalf("ParseKey(%q) error %#v is not an InvalidArgument naming a field", s, err)
			}
			if k != (Key{}) {
				t.Fatalf("ParseKey(%q) returned %#v with an error", s, k)
			}
			return
		}
		if k.String() != s {
			t.Fatalf("ParseKey(%q).String() = %q", s, k.String())
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("ParseKey(%q) accepted an invalid key: %v", s, err)
		}
		if strings.Contains(k.Namespace, "/") || strings.Contains(k.Group, "/") {
			t.Fatalf("ParseKey(%q) put '/' in namespace or group: %#v", s, k)
		}
		// Independent check of the name rules on each part.
		for _, part := range []string{k.Namespace, k.Group, k.Name} {
			if len(part) == 0 || len(part) > MaxNameLen || !utf8.ValidString(part) {
				t.Fatalf("ParseKey(%q) accepted part %q", s, part)
			}
			for _, r := range part {
				if !unicode.IsPrint(r) || unicode.IsSpace(r) || unicode.IsControl(r) {
					t.Fatalf("ParseKey(%q) accepted rune %U", s, r)
				}
			}
		}
	})
}
