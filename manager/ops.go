package manager

import (
	"context"
	"errors"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// class is what the manager does with an op's error.
type class uint8

const (
	final   class = iota // the answer: return it
	retry                // transient: retry with backoff
	backoff              // overloaded: retry, not before the server's retry-after
)

// classify decides for every error; nothing is left unclassified, so no
// error can kill the manager (Juju's catacomb.Kill on "anything else").
func classify(err error) (class, *lease.Error) {
	var e *lease.Error
	if !errors.As(err, &e) {
		// Not from the taxonomy (a transport bug): outcome unknown, and
		// every Leasehold write is idempotent, so retrying is safe.
		e = &lease.Error{Code: lease.CodeUnknown, Message: "unclassified error", Cause: err}
	}
	switch e.Code {
	case lease.CodeOverloaded:
		return backoff, e
	case lease.CodeNotLeader, lease.CodeUnavailable, lease.CodeDeadlineExceeded, lease.CodeUnknown:
		return retry, e
	}
	// Denied, NotHeld, InvalidArgument, Unauthenticated, PermissionDenied,
	// Canceled: retrying cannot change the answer.
	return final, e
}

// do runs cmd with retries until a final answer, the attempt cap, an empty
// retry budget, ctx's end or stopBy (zero: none) passes. The error is always
// a *lease.Error.
//
// Once an attempt's outcome is unknown, the op may have applied, so the call
// can no longer answer "not applied": every later error except an answer
// about the lease's current state (denied, not held) becomes Unknown.
func (m *Manager) do(ctx context.Context, cmd lease.Command, stopBy time.Time) (client.Result, error) {
	return m.attempts(ctx, cmd, stopBy, false)
}

// errNoBudget answers a retry that was not sent: the retry budget is empty.
var errNoBudget = lease.Errorf(lease.CodeUnavailable, "retry budget empty; not sent")

// attempts is do; retried says the call retries an op an earlier call gave
// up on (a renewal trying again), so even its first attempt is a retry: it
// spends the budget (errNoBudget, nothing sent, when empty) and adds nothing
// to it. Counting it as a new call would refill the budget with every retry.
func (m *Manager) attempts(ctx context.Context, cmd lease.Command, stopBy time.Time, retried bool) (client.Result, error) {
	if retried {
		if !m.cfg.Naive && !m.cfg.Budget.Take() {
			m.st.gaveUp.Add(1)
			return client.Result{}, errNoBudget
		}
		m.st.retries.Add(1)
	} else {
		m.st.first.Add(1)
		m.cfg.Budget.Call()
	}
	unknown := false
	answer := func(res client.Result, e *lease.Error) (client.Result, error) {
		if !unknown || e.Code == lease.CodeUnknown || e.Code == lease.CodeDenied || e.Code == lease.CodeNotHeld {
			return res, e
		}
		// No Cause: errors.Is would find the "not applied" code through it.
		return res, &lease.Error{Code: lease.CodeUnknown, RetryAfter: e.RetryAfter,
			Message: "an earlier attempt's outcome is unknown (it may have applied); last attempt: " + e.Error()}
	}
	for attempt := 1; ; attempt++ {
		res, err := m.send(ctx, cmd)
		if err == nil {
			return res, nil
		}
		cl, e := classify(err)
		unknown = unknown || e.Code == lease.CodeUnknown
		if cl == final {
			return answer(res, e)
		}
		giveUp := func() (client.Result, error) { m.st.gaveUp.Add(1); return answer(res, e) }
		if attempt >= m.cfg.MaxAttempts {
			return giveUp()
		}
		delay := m.retryDelay(attempt)
		if cl == backoff {
			delay = max(delay, e.RetryAfter)
		}
		if !stopBy.IsZero() && m.cfg.Clock.Now().Add(delay).After(stopBy) {
			return giveUp() // the retry would land too late to matter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay { // ctx deadlines are real time
			return giveUp()
		}
		if !m.cfg.Naive && !m.cfg.Budget.Take() {
			return giveUp()
		}
		if err := m.sleep(ctx, delay); err != nil {
			_, e := classify(err)
			return answer(res, e)
		}
		m.st.retries.Add(1)
	}
}

// retryDelay is full jitter over an exponential ceiling, or BackoffBase
// flat for the naive comparison client.
func (m *Manager) retryDelay(attempt int) time.Duration {
	if m.cfg.Naive {
		return m.cfg.BackoffBase
	}
	return client.FullJitter(m.cfg.BackoffBase, m.cfg.BackoffMax, attempt, m.rand())
}

// sleep waits d on the manager's clock, or until ctx ends or the manager stops.
func (m *Manager) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := m.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return &lease.Error{Code: lease.CodeCanceled, Message: "canceled by the caller", Cause: ctx.Err()}
	case <-m.stop:
		return errClosed
	}
}
