package lease

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest namespace, group, name, holder or pin entity, in bytes.
const MaxNameLen = 256

// Key names a lease: a namespace (for example "application-leadership"), a
// group (for example a model UUID) and a name (for example an application).
type Key struct {
	Namespace string
	Group     string
	Name      string
}

// String renders the key as "namespace/group/name", the form the CLI takes.
func (k Key) String() string { return k.Namespace + "/" + k.Group + "/" + k.Name }

// ParseKey parses "namespace/group/name". Namespace and group cannot contain
// '/', so everything after the second '/' is the name.
func ParseKey(s string) (Key, error) {
	ns, rest, ok1 := strings.Cut(s, "/")
	grp, name, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 {
		return Key{}, InvalidArgument("key", "key %q is not of the form namespace/group/name", s)
	}
	k := Key{Namespace: ns, Group: grp, Name: name}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// Validate checks every part of the key; the error names the failing field.
func (k Key) Validate() error {
	if err := ValidateName("namespace", k.Namespace); err != nil {
		return err
	}
	if strings.IndexByte(k.Namespace, '/') >= 0 {
		return InvalidArgument("namespace", "namespace must not contain '/'")
	}
	if err := ValidateName("group", k.Group); err != nil {
		return err
	}
	if strings.IndexByte(k.Group, '/') >= 0 {
		return InvalidArgument("group", "group must not contain '/'")
	}
	return ValidateName("name", k.Name)
}

// ValidateName checks a name, holder or entity: 1..MaxNameLen bytes of valid
// UTF-8, printable, with no whitespace or control characters.
func ValidateName(field, s string) error {
	if len(s) == 0 {
		return InvalidArgument(field, "%s is empty", field)
	}
	if len(s) > MaxNameLen {
		return InvalidArgument(field, "%s is %d bytes long; the limit is %d", field, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf { // ASCII fast path
			if c <= ' ' || c == 0x7f {
				return InvalidArgument(field, "%s contains whitespace or a control character at byte %d", field, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return InvalidArgument(field, "%s is not valid UTF-8 at byte %d", field, i)
		}
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return InvalidArgument(field, "%s contains a non-printable or space character %U at byte %d", field, r, i)
		}
		i += size
	}
	return nil
}

// keyOrder compares keys by namespace, group, name.
func (k Key) Less(o Key) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	if k.Group != o.Group {
		return k.Group < o.Group
	}
	return k.Name < o.Name
}

// GoString is used by %#v in test failures.
func (k Key) GoString() string { return fmt.Sprintf("lease.Key(%q)", k.String()) }
