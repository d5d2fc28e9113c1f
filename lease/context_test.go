package lease

import (
	"context"
	"errors"
	"testing"
)

// Only a deadline that passed before the op left the caller is the definite
// "not applied" DeadlineExceeded; after it, the outcome is unknown.
func TestContextError(t *testing.T) {
	for _, tc := range []struct {
		err   error
		maybe bool
		want  Code
	}{
		{context.DeadlineExceeded, false, CodeDeadlineExceeded},
		{context.Canceled, false, CodeCanceled},
		{context.DeadlineExceeded, true, CodeUnknown},
		{context.Canceled, true, CodeCanceled},
	} {
		e := ContextError(tc.err, tc.maybe)
		if e.Code != tc.want || !errors.Is(e, tc.err) || errors.Is(e, ErrMayHaveApplied) != tc.maybe {
			t.Errorf("ContextError(%v, %v) = %v (code %v), want code %v, wrapping the cause, ErrMayHaveApplied %v",
				tc.err, tc.maybe, e, e.Code, tc.want, tc.maybe)
		}
	}
}
