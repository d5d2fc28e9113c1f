package lease

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies every error Leasehold returns. Each code has exactly one
// name, one CLI exit code and one retry rule (the table below) and one gRPC
// status code (kept at the API edge, package api/wire, so this domain
// package depends on no transport).
type Code uint8

const (
	CodeOK Code = iota
	// CodeDenied: the lease is held by another holder (Error.Holder, Error.ExpiresIn).
	CodeDenied
	// CodeNotHeld: the caller does not hold the lease it tried to extend or revoke.
	CodeNotHeld
	// CodeInvalidArgument: bad input; Error.Field names it. Nothing was written.
	CodeInvalidArgument
	// CodeNotLeader: this server is not the Raft leader; retry at Error.LeaderID / LeaderAddr
	// (both empty when there is no leader).
	CodeNotLeader
	// CodeOverloaded: back pressure; the op was not proposed. Retry after Error.RetryAfter, not sooner.
	CodeOverloaded
	// CodeDeadlineExceeded: the op's deadline passed before it was applied; it was NOT applied
	// and never will be.
	CodeDeadlineExceeded
	// CodeUnavailable: no server reachable, or no leader. Nothing was applied.
	CodeUnavailable
	// CodeUnknown: the outcome is unknown (leader lost after proposing, or an internal error).
	// Every Leasehold write is idempotent, so retrying is safe.
	CodeUnknown
	// CodeUnauthenticated: no or bad credentials.
	CodeUnauthenticated
	// CodePermissionDenied: the credentials' role may not do this.
	CodePermissionDenied
	// CodeCanceled: the caller cancelled. If the op had already been proposed it may still apply.
	CodeCanceled
	// CodeCompacted: a watch cannot start or go on at the requested index: the
	// server no longer holds those events (Error.Index is the oldest index it
	// can resume from). Re-read the state and watch from the read's index + 1.
	CodeCompacted
	numCodes
)

type codeInfo struct {
	name      string // stable name used in JSON and logs
	exit      int
	retryable bool
	message   string
}

// codeTable is the whole taxonomy in one place.
var codeTable = [numCodes]codeInfo{
	CodeOK:               {"ok", 0, false, "ok"},
	CodeDenied:           {"denied", 3, false, "lease held by another holder"},
	CodeNotHeld:          {"not_held", 4, false, "lease not held by this holder"},
	CodeInvalidArgument:  {"invalid_argument", 2, false, "invalid argument"},
	CodeNotLeader:        {"not_leader", 5, true, "not the leader"},
	CodeOverloaded:       {"overloaded", 6, true, "overloaded"},
	CodeDeadlineExceeded: {"deadline_exceeded", 7, true, "deadline exceeded before the operation was applied; it was not applied"},
	CodeUnavailable:      {"unavailable", 5, true, "unavailable"},
	CodeUnknown:          {"unknown", 1, true, "outcome unknown"},
	CodeUnauthenticated:  {"unauthenticated", 8, false, "unauthenticated"},
	CodePermissionDenied: {"permission_denied", 8, false, "permission denied"},
	CodeCanceled:         {"canceled", 1, false, "canceled"},
	CodeCompacted:        {"compacted", 2, false, "watch events before the requested index are no longer kept"},
}

func (c Code) info() codeInfo {
	if c >= numCodes {
		return codeTable[CodeUnknown]
	}
	return codeTable[c]
}

// String returns the code's stable name ("denied", "not_held", ...).
func (c Code) String() string { return c.info().name }

// Retryable reports whether a caller may retry an op that failed with this
// code (with backoff, and not before any retry-after).
func (c Code) Retryable() bool { return c.info().retryable }

// ExitCode is the CLI's exit status for this error.
func (c Code) ExitCode() int { return c.info().exit }

// CodeFromName is the inverse of Code.String; unknown names give CodeUnknown, false.
func CodeFromName(name string) (Code, bool) {
	for c := CodeOK; c < numCodes; c++ {
		if codeTable[c].name == name {
			return c, true
		}
	}
	return CodeUnknown, false
}

// Codes lists every code, CodeOK first.
func Codes() []Code {
	out := make([]Code, numCodes)
	for c := range out {
		out[c] = Code(c)
	}
	return out
}

// Error is every Leasehold error. Compare with errors.Is against the sentinels
// (ErrDenied, ErrNotHeld, ...), which match on Code alone.
type Error struct {
	Code    Code
	Message string
	// Field names the invalid input (CodeInvalidArgument).
	Field string
	// Holder and ExpiresIn describe the current holder (CodeDenied; Holder
	// also for CodeNotHeld when another holder has the lease).
	Holder    string
	ExpiresIn time.Duration
	// Token, Start and Expiry are the current holder's lease and Now the
	// replicated time the refused command was applied at (CodeDenied,
	// CodeNotHeld): with them a checker can place the answer in the log's
	// time. Now is 0 when unknown (an error not made by the state machine).
	Token  uint64
	Start  time.Duration
	Expiry time.Duration
	Now    time.Duration
	// LeaderID and LeaderAddr are the hint for CodeNotLeader; empty when no leader is known.
	LeaderID   string
	LeaderAddr string
	// RetryAfter is how long to wait before retrying (CodeOverloaded).
	RetryAfter time.Duration
	// Index is the oldest log index a watch can resume from (CodeCompacted).
	Index uint64
	// Cause is an underlying error, if any (not sent over the wire).
	Cause error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.info().message
	}
	switch e.Code {
	case CodeDenied:
		if e.Holder != "" {
			return fmt.Sprintf("%s: held by %q for %v more", msg, e.Holder, e.ExpiresIn.Round(time.Millisecond))
		}
	case CodeNotLeader:
		if e.LeaderID != "" {
			return fmt.Sprintf("%s: leader is %q at %s", msg, e.LeaderID, e.LeaderAddr)
		}
		return msg + ": no leader known"
	case CodeCompacted:
		if e.Index > 0 {
			return fmt.Sprintf("%s: oldest index kept is %d", msg, e.Index)
		}
	case CodeOverloaded:
		if e.RetryAfter > 0 {
			return fmt.Sprintf("%s: retry after %v", msg, e.RetryAfter.Round(time.Millisecond))
		}
	}
	if e.Cause != nil {
		return msg + ": " + e.Cause.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrDenied) and friends match any error of that code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func (e *Error) Unwrap() error { return e.Cause }

// Retryable reports whether the op may be retried.
func (e *Error) Retryable() bool { return e.Code.Retryable() }

// Sentinels for errors.Is.
var (
	ErrDenied           = &Error{Code: CodeDenied}
	ErrNotHeld          = &Error{Code: CodeNotHeld}
	ErrInvalidArgument  = &Error{Code: CodeInvalidArgument}
	ErrNotLeader        = &Error{Code: CodeNotLeader}
	ErrOverloaded       = &Error{Code: CodeOverloaded}
	ErrDeadlineExceeded = &Error{Code: CodeDeadlineExceeded}
	ErrUnavailable      = &Error{Code: CodeUnavailable}
	ErrUnknown          = &Error{Code: CodeUnknown}
	ErrUnauthenticated  = &Error{Code: CodeUnauthenticated}
	ErrPermissionDenied = &Error{Code: CodePermissionDenied}
	ErrCanceled         = &Error{Code: CodeCanceled}
	ErrCompacted        = &Error{Code: CodeCompacted}
)

// InvalidArgument builds a CodeInvalidArgument error naming field.
func InvalidArgument(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Errorf builds an error of the given code.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: CodeOK for nil, the Error's code, or
// CodeUnknown for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeUnknown
}

// IsRetryable reports whether err may be retried (false for nil).
func IsRetryable(err error) bool { return err != nil && CodeOf(err).Retryable() }
