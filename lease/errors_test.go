package lease

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// taxonomy is the expected error table, written out independently of codeTable.
var taxonomy = []struct {
	code      Code
	name      string
	exit      int
	retryable bool
	sentinel  *Error
}{
	{CodeOK, "ok", 0, false, nil},
	{CodeDenied, "denied", 3, false, ErrDenied},
	{CodeNotHeld, "not_held", 4, false, ErrNotHeld},
	{CodeInvalidArgument, "invalid_argument", 2, false, ErrInvalidArgument},
	{CodeNotLeader, "not_leader", 5, true, ErrNotLeader},
	{CodeOverloaded, "overloaded", 6, true, ErrOverloaded},
	{CodeDeadlineExceeded, "deadline_exceeded", 7, true, ErrDeadlineExceeded},
	{CodeUnavailable, "unavailable", 5, true, ErrUnavailable},
	{CodeUnknown, "unknown", 1, true, ErrUnknown},
	{CodeUnauthenticated, "unauthenticated", 8, false, ErrUnauthenticated},
	{CodePermissionDenied, "permission_denied", 8, false, ErrPermissionDenied},
	{CodeCanceled, "canceled", 1, false, ErrCanceled},
	{CodeCompacted, "compacted", 2, false, ErrCompacted},
}

func TestTaxonomyTable(t *testing.T) {
	if len(taxonomy) != int(numCodes) {
		t.Fatalf("test table has %d codes, package has %d", len(taxonomy), numCodes)
	}
	for _, tc := range taxonomy {
		c := tc.code
		if c.String() != tc.name || c.ExitCode() != tc.exit || c.Retryable() != tc.retryable {
			t.Errorf("%d: got (%q, %d, %v), want (%q, %d, %v)", c, c.String(), c.ExitCode(),
				c.Retryable(), tc.name, tc.exit, tc.retryable)
		}
		if got, ok := CodeFromName(tc.name); !ok || got != c {
			t.Errorf("CodeFromName(%q) = %v, %v", tc.name, got, ok)
		}
		if c == CodeOK {
			continue
		}
		if tc.sentinel.Code != c {
			t.Errorf("sentinel for %v has code %v", c, tc.sentinel.Code)
		}
		e := &Error{Code: c}
		if e.Retryable() != tc.retryable || IsRetryable(e) != tc.retryable {
			t.Errorf("%v: Error.Retryable = %v, IsRetryable = %v", c, e.Retryable(), IsRetryable(e))
		}
		if CodeOf(e) != c || CodeOf(fmt.Errorf("wrapped: %w", e)) != c {
			t.Errorf("CodeOf(%v) wrong", c)
		}
		// errors.Is matches the sentinel of the same code, and only it.
		for _, other := range taxonomy[1:] {
			wrapped := fmt.Errorf("ctx: %w", Errorf(c, "x"))
			if got, want := errors.Is(wrapped, other.sentinel), other.code == c; got != want {
				t.Errorf("errors.Is(%v error, %v sentinel) = %v", c, other.code, got)
			}
		}
	}
	// Every Code has a distinct name, so the name map round trips.
	names := map[string]bool{}
	for _, c := range Codes() {
		if names[c.String()] {
			t.Errorf("%v: name is shared", c)
		}
		names[c.String()] = true
	}
	if len(Codes()) != int(numCodes) {
		t.Errorf("Codes() lists %d of %d codes", len(Codes()), numCodes)
	}
}

func TestCodeEdges(t *testing.T) {
	for _, c := range []Code{numCodes, 200, 255} {
		if c.String() != "unknown" || c.ExitCode() != 1 || !c.Retryable() {
			t.Errorf("out-of-range code %d should behave as unknown", c)
		}
	}
	for _, name := range []string{"", "Denied", "DENIED", "not-held", "bogus"} {
		if c, ok := CodeFromName(name); ok || c != CodeUnknown {
			t.Errorf("CodeFromName(%q) = %v, %v; want unknown, false", name, c, ok)
		}
	}
	if CodeOf(nil) != CodeOK || IsRetryable(nil) {
		t.Error("nil error must be CodeOK and not retryable")
	}
	if CodeOf(io.EOF) != CodeUnknown || !IsRetryable(io.EOF) {
		t.Error("a foreign error must be CodeUnknown (retryable)")
	}
	if errors.Is(io.EOF, ErrUnknown) {
		t.Error("a foreign error must not match ErrUnknown by errors.Is")
	}
	if errors.Is(ErrDenied, io.EOF) {
		t.Error("Is must reject non-*Error targets")
	}
}

func TestErrorStrings(t *testing.T) {
	cause := errors.New("disk on fire")
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Code: CodeDenied}, "lease held by another holder"},
		{&Error{Code: CodeDenied, Holder: "u/1", ExpiresIn: 1500*time.Millisecond + 400*time.Microsecond},
			`lease held by another holder: held by "u/1" for 1.5s more`},
		{&Error{Code: CodeNotHeld}, "lease not held by this holder"},
		{&Error{Code: CodeNotLeader}, "not the leader: no leader known"},
		{&Error{Code: CodeNotLeader, LeaderID: "s2", LeaderAddr: "10.0.0.2:7000"}, `not the leader: leader is "s2" at 10.0.0.2:7000`},
		{&Error{Code: CodeOverloaded}, "overloaded"},
		{&Error{Code: CodeOverloaded, RetryAfter: 250 * time.Millisecond}, "overloaded: retry after 250ms"},
		{&Error{Code: CodeDeadlineExceeded}, "deadline exceeded before the operation was applied; it was not applied"},
		{&Error{Code: CodeUnavailable, Cause: cause}, "unavailable: disk on fire"},
		{&Error{Code: CodeUnknown, Message: "leader lost", Cause: cause}, "leader lost: disk on fire"},
		{&Error{Code: CodeUnauthenticated}, "unauthenticated"},
		{&Error{Code: CodePermissionDenied}, "permission denied"},
		{&Error{Code: CodeCanceled}, "canceled"},
		{&Error{Code: CodeCompacted, Index: 42}, "watch events before the requested index are no longer kept: oldest index kept is 42"},
		{&Error{Code: CodeInvalidArgument, Field: "holder", Message: "holder is empty"}, "holder is empty"},
		{InvalidArgument("duration", "duration %v is outside", time.Hour), "duration 1h0m0s is outside"},
		{Errorf(CodeNotHeld, "lease %s not held by %q", "a/b/c", "u/0"), `lease a/b/c not held by "u/0"`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%v.Error() = %q, want %q", tc.err.Code, got, tc.want)
		}
	}
	e := &Error{Code: CodeUnavailable, Cause: cause}
	if !errors.Is(e, cause) || errors.Unwrap(e) != cause {
		t.Error("Cause must be reachable through Unwrap")
	}
	if !errors.Is(e, ErrUnavailable) {
		t.Error("an error with a cause must still match its sentinel")
	}
	ia := InvalidArgument("name", "bad %s", "name")
	if ia.Code != CodeInvalidArgument || ia.Field != "name" || !strings.Contains(ia.Error(), "bad name") {
		t.Errorf("InvalidArgument built %+v", ia)
	}
}

func TestResultErr(t *testing.T) {
	ok := Result{Code: CodeOK, Outcome: OutcomeGranted}
	if err := ok.Err(); err != nil {
		t.Fatalf("OK result gave error %v", err)
	}
	denied := Result{Code: CodeDenied, Holder: "u/1", Expiry: 40 * time.Second, Now: 10 * time.Second}
	err := denied.Err()
	var le *Error
	if !errors.As(err, &le) || le.Holder != "u/1" || le.ExpiresIn != 30*time.Second || !errors.Is(err, ErrDenied) {
		t.Fatalf("denied result gave %#v", err)
	}
	denied = Result{Code: CodeDenied, Holder: "u/1", Token: 7, Start: 5 * time.Second, Expiry: 40 * time.Second, Now: 10 * time.Second}
	if errors.As(denied.Err(), &le); le.Token != 7 || le.Start != 5*time.Second || le.Expiry != 40*time.Second || le.Now != 10*time.Second {
		t.Fatalf("denied result lost the holder's lease or the time: %#v", le)
	}
	inv := Result{Code: CodeInvalidArgument, Field: "holder", Message: "holder is empty"}
	err = inv.Err()
	if !errors.As(err, &le) || le.Field != "holder" || err.Error() != "holder is empty" {
		t.Fatalf("invalid result gave %#v", err)
	}
	nh := Result{Code: CodeNotHeld, Holder: "u/1", Token: 3, Start: time.Second, Expiry: time.Minute, Now: 2 * time.Second}
	err = nh.Err()
	if !errors.As(err, &le) || le.Holder != "u/1" || le.Token != 3 || le.Start != time.Second || le.Expiry != time.Minute ||
		le.Now != 2*time.Second || le.ExpiresIn != 0 || !errors.Is(err, ErrNotHeld) {
		t.Fatalf("not-held result gave %#v", err)
	}
	de := Result{Code: CodeDeadlineExceeded}
	if !errors.Is(de.Err(), ErrDeadlineExceeded) || !IsRetryable(de.Err()) {
		t.Fatalf("deadline result gave %v", de.Err())
	}
}
