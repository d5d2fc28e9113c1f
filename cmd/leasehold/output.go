package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// cliError is an error already printed to the user; main exits with its code.
type cliError struct {
	code int
	err  error
}

func (e cliError) Error() string { return e.err.Error() }
func (e cliError) ExitCode() int { return e.code }
func (e cliError) Unwrap() error { return e.err }

// printer writes results as text for people or JSON for scripts. JSON goes
// to stdout, errors included, so a script reads one stream; text errors go
// to stderr.
type printer struct {
	json   bool
	stdout io.Writer
	stderr io.Writer
}

func newPrinter(jsonOut bool) *printer {
	return &printer{json: jsonOut, stdout: os.Stdout, stderr: os.Stderr}
}

func (p *printer) emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(p.stdout, string(b))
}

// fail prints err and returns the cliError carrying its exit code (the
// taxonomy's lease.Code.ExitCode; 1 for anything outside it).
func (p *printer) fail(err error) error {
	var le *lease.Error
	if !errors.As(err, &le) {
		le = &lease.Error{Code: lease.CodeUnknown, Message: err.Error()}
	}
	if p.json {
		e := map[string]any{"code": le.Code.String(), "message": le.Error(), "retryable": le.Code.Retryable()}
		switch le.Code {
		case lease.CodeDenied:
			e["holder"], e["expires_in_ms"] = le.Holder, le.ExpiresIn.Milliseconds()
		case lease.CodeInvalidArgument:
			e["field"] = le.Field
		case lease.CodeNotLeader:
			e["leader_id"], e["leader_addr"] = le.LeaderID, le.LeaderAddr
		case lease.CodeOverloaded:
			e["retry_after_ms"] = le.RetryAfter.Milliseconds()
		}
		p.emit(map[string]any{"error": e})
	} else {
		fmt.Fprintf(p.stderr, "leasehold: %s: %v\n", le.Code, le)
	}
	return cliError{code: le.Code.ExitCode(), err: err}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// resultJSON is a write's --json output.
func resultJSON(r client.Result, holderField, holder string) map[string]any {
	out := map[string]any{"key": r.Key.String(), holderField: holder, "result": r.Outcome.String()}
	if r.Outcome == lease.OutcomeGranted || r.Outcome == lease.OutcomeExtended {
		out["token"], out["expires_in_ms"] = r.Token, ms(r.ExpiresIn)
		out["start_ns"], out["expiry_ns"], out["now_ns"] = int64(r.Start), int64(r.Expiry), int64(r.Now)
	}
	return out
}

func (p *printer) result(r client.Result, holderField, holder string) {
	if p.json {
		p.emit(resultJSON(r, holderField, holder))
		return
	}
	switch r.Outcome {
	case lease.OutcomeGranted, lease.OutcomeExtended:
		fmt.Fprintf(p.stdout, "%s %s to %s: token %d, expires in %v\n", r.Outcome, r.Key, holder, r.Token, r.ExpiresIn.Round(time.Millisecond))
	case lease.OutcomeRevoked:
		fmt.Fprintf(p.stdout, "revoked %s from %s\n", r.Key, holder)
	case lease.OutcomeAbsent:
		fmt.Fprintf(p.stdout, "%s was not held (nothing to revoke)\n", r.Key)
	default:
		fmt.Fprintf(p.stdout, "%s %s by %s\n", r.Outcome, r.Key, holder)
	}
}

func leaseJSON(l *client.Lease) map[string]any {
	return map[string]any{"key": l.Key.String(), "holder": l.Holder, "token": l.Token,
		"expires_in_ms": ms(l.ExpiresIn), "pinned": l.Pinned, "start_ns": int64(l.Start), "expiry_ns": int64(l.Expiry)}
}

func metaJSON(out map[string]any, m client.ReadMeta) map[string]any {
	out["applied_index"], out["lag"], out["server_id"] = m.AppliedIndex, m.Lag, m.ServerID
	return out
}

func leaseLine(l *client.Lease) string {
	s := fmt.Sprintf("%s  holder=%s  token=%d  expires_in=%v", l.Key, l.Holder, l.Token, l.ExpiresIn)
	if l.Pinned {
		s += "  pinned"
	}
	return s
}

func eventJSON(e *lease.Event) map[string]any {
	return map[string]any{"kind": e.Kind.String(), "key": e.Key.String(), "holder": e.Holder, "token": e.Token,
		"index": e.Index, "expiry_ns": int64(e.Expiry), "now_ns": int64(e.Now)}
}

func (p *printer) event(e *lease.Event) {
	if p.json {
		p.emit(eventJSON(e))
		return
	}
	fmt.Fprintf(p.stdout, "%d  %-8s  %s  holder=%s  token=%d\n", e.Index, e.Kind, e.Key, e.Holder, e.Token)
}
