package lease

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// nameCases is the validation matrix shared by every name-like field.
// ok=false cases must be rejected with the field named.
var nameCases = []struct {
	desc string
	s    string
	ok   bool
}{
	{"empty", "", false},
	{"one byte", "a", true},
	{"typical", "unit-mysql-0", true},
	{"punctuation", "a:b@c.d_e-f+g=h#i", true},
	{"slash", "mysql/0", true},
	{"256 bytes", strings.Repeat("x", 256), true},
	{"257 bytes", strings.Repeat("x", 257), false},
	{"256 bytes of multibyte runes", strings.Repeat("é", 128), true},
	{"258 bytes of multibyte runes", strings.Repeat("é", 129), false},
	{"space", "a b", false},
	{"leading space", " a", false},
	{"trailing space", "a ", false},
	{"tab", "a\tb", false},
	{"newline", "a\nb", false},
	{"carriage return", "a\rb", false},
	{"NUL", "a\x00b", false},
	{"bell", "\a", false},
	{"escape", "a\x1b[0m", false},
	{"DEL", "a\x7fb", false},
	{"C1 control U+0085", "a\u0085b", false},
	{"C1 control U+009B", "a\u009bb", false},
	{"no-break space", "a\u00a0b", false},
	{"em space", "a\u2003b", false},
	{"ideographic space", "a\u3000b", false},
	{"line separator", "a\u2028b", false},
	{"zero width space", "a\u200bb", false},
	{"byte order mark", "\ufeffa", false},
	{"private use", "a\ue000", false},
	{"unassigned code point", "a\U000e0080", false},
	{"lone continuation byte", "a\x80", false},
	{"truncated sequence", "a\xc3", false},
	{"overlong encoding", "\xc0\xaf", false},
	{"encoded surrogate", "\xed\xa0\x80", false},
	{"beyond U+10FFFF", "\xf4\x90\x80\x80", false},
	{"0xff byte", "\xff", false},
	{"accented", "café", true},
	{"CJK", "漢字", true},
	{"emoji", "🔒", true},
	{"replacement char spelled out", "\ufffd", true},
	{"combining mark", "e\u0301", true},
}

func TestValidateName(t *testing.T) {
	for _, tc := range nameCases {
		for _, field := range []string{"holder", "entity", "name"} {
			err := ValidateName(field, tc.s)
			if tc.ok {
				if err != nil {
					t.Errorf("%s: ValidateName(%q, %q) = %v, want nil", tc.desc, field, tc.s, err)
				}
				continue
			}
			checkInvalid(t, tc.desc, err, field)
		}
	}
}

// checkInvalid asserts err is an InvalidArgument naming field.
func checkInvalid(t *testing.T, desc string, err error, field string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got nil error, want invalid %s", desc, field)
		return
	}
	var le *Error
	if !errors.As(err, &le) {
		t.Errorf("%s: error %v is %T, not *Error", desc, err, err)
		return
	}
	if le.Code != CodeInvalidArgument || le.Field != field {
		t.Errorf("%s: got code %v field %q, want invalid_argument field %q (%v)", desc, le.Code, le.Field, field, err)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("%s: errors.Is(%v, ErrInvalidArgument) = false", desc, err)
	}
	if le.Message == "" || !strings.Contains(le.Message, field) {
		t.Errorf("%s: message %q does not name %q", desc, le.Message, field)
	}
}

func TestKeyValidate(t *testing.T) {
	good := Key{Namespace: "application-leadership", Group: "5b1f0c7e-model", Name: "mysql"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid key %v: %v", good, err)
	}
	for _, tc := range nameCases {
		for _, field := range []string{"namespace", "group", "name"} {
			k := good
			switch field {
			case "namespace":
				k.Namespace = tc.s
			case "group":
				k.Group = tc.s
			case "name":
				k.Name = tc.s
			}
			err := k.Validate()
			// '/' is allowed in a name but not in a namespace or group.
			ok := tc.ok && (field == "name" || !strings.Contains(tc.s, "/"))
			if ok {
				if err != nil {
					t.Errorf("%s in %s: %v", tc.desc, field, err)
				}
				continue
			}
			checkInvalid(t, tc.desc+" in "+field, err, field)
		}
	}
	// The first failing field is the one named.
	checkInvalid(t, "all empty", Key{}.Validate(), "namespace")
	checkInvalid(t, "group and name empty", Key{Namespace: "n"}.Validate(), "group")
	checkInvalid(t, "slash in group", Key{Namespace: "n", Group: "a/b", Name: ""}.Validate(), "group")
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in    string
		want  Key
		field string // "" means success
	}{
		{"ns/grp/name", Key{"ns", "grp", "name"}, ""},
		{"ns/grp/mysql/0", Key{"ns", "grp", "mysql/0"}, ""},
		{"ns/grp/a/b/c", Key{"ns", "grp", "a/b/c"}, ""},
		{"ns/grp", Key{}, "key"},
		{"ns", Key{}, "key"},
		{"", Key{}, "key"},
		{"//", Key{}, "namespace"},
		{"/grp/name", Key{}, "namespace"},
		{"ns//name", Key{}, "group"},
		{"ns/grp/", Key{}, "name"},
		{"ns/grp/na me", Key{}, "name"},
		{"n s/grp/name", Key{}, "namespace"},
		{"ns/g\x00/name", Key{}, "group"},
		{"ns/grp/" + strings.Repeat("x", 257), Key{}, "name"},
		{"ns/grp/" + strings.Repeat("x", 256), Key{"ns", "grp", strings.Repeat("x", 256)}, ""},
	}
	for _, tc := range tests {
		k, err := ParseKey(tc.in)
		if tc.field == "" {
			if err != nil || k != tc.want {
				t.Errorf("ParseKey(%q) = %#v, %v; want %#v", tc.in, k, err, tc.want)
			}
			if got, err := ParseKey(k.String()); err != nil || got != k {
				t.Errorf("ParseKey(%q.String()) = %#v, %v", tc.in, got, err)
			}
			continue
		}
		if k != (Key{}) {
			t.Errorf("ParseKey(%q) returned non-zero key %#v with an error", tc.in, k)
		}
		checkInvalid(t, "ParseKey("+tc.in+")", err, tc.field)
	}
}

func TestKeyStringAndOrder(t *testing.T) {
	k := Key{"a", "b", "c/d"}
	if k.String() != "a/b/c/d" {
		t.Errorf("String() = %q", k.String())
	}
	if got := k.GoString(); got != `lease.Key("a/b/c/d")` {
		t.Errorf("GoString() = %s", got)
	}
	ordered := []Key{{"a", "a", "a"}, {"a", "a", "b"}, {"a", "b", "a"}, {"b", "a", "a"}}
	for i := range ordered {
		for j := range ordered {
			if got, want := ordered[i].Less(ordered[j]), i < j; got != want {
				t.Errorf("%v.Less(%v) = %v, want %v", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestCommandValidate(t *testing.T) {
	key := Key{"ns", "grp", "name"}
	lim := DefaultLimits
	mk := func(op Op, holder string, d time.Duration) *Command {
		return &Command{Op: op, Key: key, Holder: holder, Duration: d}
	}
	tests := []struct {
		desc  string
		cmd   *Command
		field string // "" = valid
	}{
		{"claim", mk(OpClaim, "u/0", time.Minute), ""},
		{"extend", mk(OpExtend, "u/0", time.Minute), ""},
		{"revoke without duration", mk(OpRevoke, "u/0", 0), ""},
		{"pin without duration", mk(OpPin, "machine-0", 0), ""},
		{"unpin without duration", mk(OpUnpin, "machine-0", 0), ""},
		{"revoke ignores a wild duration", mk(OpRevoke, "u/0", -time.Hour), ""},
		{"claim at min", mk(OpClaim, "u/0", time.Second), ""},
		{"claim at max", mk(OpClaim, "u/0", 5*time.Minute), ""},
		{"claim below min", mk(OpClaim, "u/0", time.Second-1), "duration"},
		// Above max is the state machine's to judge: it clamps a renewal and
		// refuses a new grant. Only the absolute cap is checked here.
		{"claim above max", mk(OpClaim, "u/0", 5*time.Minute+1), ""},
		{"claim above the cap", mk(OpClaim, "u/0", MaxDurationCap+1), "duration"},
		{"claim zero duration", mk(OpClaim, "u/0", 0), "duration"},
		{"claim negative duration", mk(OpClaim, "u/0", -time.Second), "duration"},
		{"extend below min", mk(OpExtend, "u/0", time.Millisecond), "duration"},
		{"extend above max", mk(OpExtend, "u/0", time.Hour), ""},
		{"extend above the cap", mk(OpExtend, "u/0", 25*time.Hour), "duration"},
		{"op invalid", mk(OpInvalid, "u/0", time.Minute), "op"},
		{"op out of range", mk(numOps, "u/0", time.Minute), "op"},
		{"op 255", mk(Op(255), "u/0", time.Minute), "op"},
		{"claim empty holder", mk(OpClaim, "", time.Minute), "holder"},
		{"extend holder with space", mk(OpExtend, "u 0", time.Minute), "holder"},
		{"revoke long holder", mk(OpRevoke, strings.Repeat("h", 257), 0), "holder"},
		{"pin empty entity", mk(OpPin, "", 0), "entity"},
		{"unpin bad entity", mk(OpUnpin, "e\x01", 0), "entity"},
		{"bad key before holder", &Command{Op: OpClaim, Key: Key{"", "g", "n"}, Holder: "", Duration: time.Minute}, "namespace"},
		{"bad holder before duration", &Command{Op: OpClaim, Key: key, Holder: "", Duration: 0}, "holder"},
	}
	for _, tc := range tests {
		err := tc.cmd.Validate(lim)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.desc, err)
			}
			continue
		}
		checkInvalid(t, tc.desc, err, tc.field)
	}
	// Limits are honoured as given, not hard-coded.
	narrow := Limits{MinDuration: 10 * time.Second, MaxDuration: 20 * time.Second}
	if err := mk(OpClaim, "u", 5*time.Second).Validate(narrow); err == nil {
		t.Error("5s claim accepted with a 10s minimum")
	}
	if err := mk(OpClaim, "u", 15*time.Second).Validate(narrow); err != nil {
		t.Errorf("15s claim in [10s,20s]: %v", err)
	}
	if err := mk(OpExtend, "u", 21*time.Second).Validate(narrow); err != nil {
		t.Errorf("21s extend with a 20s maximum (the state machine clamps it): %v", err)
	}
}

func TestLimitsValidateAndClamp(t *testing.T) {
	for _, tc := range []struct {
		l     Limits
		field string
	}{
		{DefaultLimits, ""},
		{Limits{MinDuration: time.Millisecond, MaxDuration: MaxDurationCap}, ""},
		{Limits{MinDuration: time.Millisecond - 1, MaxDuration: time.Second}, "min_duration"},
		{Limits{MinDuration: time.Second, MaxDuration: time.Second - 1}, "max_duration"},
		{Limits{MinDuration: time.Second, MaxDuration: MaxDurationCap + 1}, "max_duration"},
	} {
		err := tc.l.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.l, err)
			}
			continue
		}
		checkInvalid(t, tc.l.MaxDuration.String(), err, tc.field)
	}
	l := Limits{MinDuration: time.Second, MaxDuration: time.Minute}
	for in, want := range map[time.Duration]time.Duration{0: time.Second, 30 * time.Second: 30 * time.Second, time.Hour: time.Minute} {
		if got := l.Clamp(in); got != want {
			t.Errorf("Clamp(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestOpNames(t *testing.T) {
	want := map[Op]string{OpInvalid: "invalid", OpClaim: "claim", OpExtend: "extend", OpRevoke: "revoke",
		OpPin: "pin", OpUnpin: "unpin", numOps: "invalid", Op(200): "invalid"}
	for op, name := range want {
		if op.String() != name {
			t.Errorf("Op(%d).String() = %q, want %q", op, op.String(), name)
		}
	}
	valid := map[Op]bool{OpClaim: true, OpExtend: true, OpRevoke: true, OpPin: true, OpUnpin: true, OpQueueClaim: true, OpCancelQueue: true}
	renewal := map[Op]bool{OpExtend: true, OpRevoke: true, OpCancelQueue: true}
	for op := Op(0); op < 255; op++ {
		if op.Valid() != valid[op] {
			t.Errorf("Op(%d).Valid() = %v", op, op.Valid())
		}
		if op.IsRenewal() != renewal[op] {
			t.Errorf("Op(%d).IsRenewal() = %v", op, op.IsRenewal())
		}
	}
}

func TestOutcomeAndEventNames(t *testing.T) {
	outcomes := map[Outcome]string{OutcomeNone: "none", OutcomeGranted: "granted", OutcomeExtended: "extended",
		OutcomeRevoked: "revoked", OutcomeAbsent: "absent", OutcomePinned: "pinned", OutcomeUnpinned: "unpinned", Outcome(99): "none"}
	for o, name := range outcomes {
		if o.String() != name {
			t.Errorf("Outcome(%d) = %q, want %q", o, o.String(), name)
		}
	}
	events := map[EventKind]string{0: "unknown", EventClaimed: "claimed", EventExtended: "extended", EventRevoked: "revoked",
		EventExpired: "expired", EventPinned: "pinned", EventUnpinned: "unpinned", EventKind(7): "unknown"}
	for k, name := range events {
		if k.String() != name {
			t.Errorf("EventKind(%d) = %q, want %q", k, k.String(), name)
		}
	}
}
