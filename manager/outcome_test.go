package manager

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// An attempt whose outcome is unknown may have applied: no later attempt's
// "not applied" error may be reported as the call's answer.
func TestUnknownAttemptMakesTheAnswerUnknown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		later error
	}{
		{"deadline", lease.Errorf(lease.CodeDeadlineExceeded, "not applied")},
		{"overloaded", &lease.Error{Code: lease.CodeOverloaded, RetryAfter: 10 * time.Millisecond}},
		{"not leader", lease.Errorf(lease.CodeNotLeader, "not leader")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Rand = func() float64 { return 0 }; c.MaxAttempts = 3 })
			e.tr.fail = func(call int, cmds []lease.Command) error {
				if call == 1 {
					// The claim applies, but the answer is lost.
					e.tr.apply(cmds...)
					return lease.Errorf(lease.CodeUnknown, "connection lost after send")
				}
				return tc.later
			}
			done := make(chan error, 1)
			go func() { _, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute); done <- err }()
			for {
				select {
				case err := <-done:
					if lease.CodeOf(err) != lease.CodeUnknown {
						t.Fatalf("claim that applied on attempt 1 answered %v; want Unknown", err)
					}
					if calls, _ := e.tr.counts(); calls != 3 {
						t.Fatalf("%d calls, want 3", calls)
					}
					return
				default:
					e.c.Advance(10 * time.Millisecond)
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
}

// Answers about the lease's current state stay final after an unknown
// attempt: denied is denied, whatever the first attempt did.
func TestUnknownAttemptThenDeniedIsDenied(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Rand = func() float64 { return 0 } })
	e.tr.fail = func(call int, cmds []lease.Command) error {
		if call == 1 {
			e.tr.apply(lease.Command{Op: lease.OpClaim, Key: kApp, Holder: "other", Duration: time.Minute})
			return lease.Errorf(lease.CodeUnknown, "connection lost")
		}
		return nil
	}
	_, err := e.h.Claim(ctxT(t), "mysql", "u/0", time.Minute)
	if lease.CodeOf(err) != lease.CodeDenied {
		t.Fatalf("answer %v, want Denied", err)
	}
}
