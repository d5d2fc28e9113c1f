package lease

import (
	"context"
	"errors"
)

// ErrMayHaveApplied is wrapped (with the context's error) by the error a
// caller gets when it leaves after its op left its hands (proposed, or sent
// to a server): the op may still be applied.
var ErrMayHaveApplied = errors.New("the operation was proposed and may still apply")

// ContextError is the one mapping from a context's error (ctx.Err()) to the
// taxonomy. mayHaveApplied says whether the op had left the caller's hands
// (proposed, or sent to a server) when the context ended.
//
// Before that, nothing was applied: a passed deadline is
// CodeDeadlineExceeded (a definite "not applied"), anything else
// CodeCanceled. After it only the outcome is unknown: a caller that ran out
// of time did not choose to stop, so it is told CodeUnknown (retry: every
// write is idempotent); one that cancelled is told CodeCanceled. Both then
// wrap ErrMayHaveApplied.
func ContextError(err error, mayHaveApplied bool) *Error {
	deadline := errors.Is(err, context.DeadlineExceeded)
	if mayHaveApplied {
		cause := errors.Join(ErrMayHaveApplied, err)
		if deadline {
			return &Error{Code: CodeUnknown, Cause: cause,
				Message: "deadline passed after the operation was proposed; it may or may not be applied"}
		}
		return &Error{Code: CodeCanceled, Cause: cause,
			Message: "canceled after the operation was proposed; it may still be applied"}
	}
	if deadline {
		return &Error{Code: CodeDeadlineExceeded, Cause: err}
	}
	return &Error{Code: CodeCanceled, Cause: err, Message: "canceled by the caller; not applied"}
}
