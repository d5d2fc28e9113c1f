package client

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// kind is what a call does, which decides where it goes and how a lost
// answer is reported.
type kind uint8

const (
	kindWrite kind = iota // to the leader; a lost answer is CodeUnknown
	kindRead              // linearizable read: to the leader
	kindStale             // stale read, watch, status: any server
)

// budget is a token bucket of retries (gRPC A6 retry throttling in spirit):
// every call adds ratio tokens up to max, every retry takes one. So over
// time retries are at most ratio of calls, plus a burst of max. Tokens are
// counted in thousandths so ten calls at 0.1 make exactly one retry.
type budget struct {
	mu    sync.Mutex
	milli int64
	max   int64
	ratio int64
}

func newBudget(burst, ratio float64) budget {
	m := int64(math.Round(burst * 1000))
	return budget{milli: m, max: m, ratio: int64(math.Round(ratio * 1000))}
}

func (b *budget) onCall() {
	b.mu.Lock()
	b.milli = min(b.max, b.milli+b.ratio)
	b.mu.Unlock()
}

func (b *budget) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.milli < 1000 {
		return false
	}
	b.milli -= 1000
	return true
}

// backoff is the full-jitter delay before retry n (1-based): uniform in
// [0, min(max, base*2^(n-1))).
func (c *Client) backoff(n int) time.Duration {
	c.randMu.Lock()
	r := c.cfg.Rand()
	c.randMu.Unlock()
	return FullJitter(c.cfg.BackoffBase, c.cfg.BackoffMax, n, r)
}

// FullJitter is the full-jitter exponential backoff before retry n
// (1-based) for a uniform r in [0, 1): r * min(max, base*2^(n-1)). The
// lease manager uses the same rule for the retries it makes itself.
func FullJitter(base, max time.Duration, n int, r float64) time.Duration {
	ceil := float64(base) * math.Pow(2, float64(n-1))
	ceil = math.Min(ceil, float64(max))
	return time.Duration(r * ceil)
}

// Budget is the retry budget (the token bucket above) for callers that
// retry on their own, such as the lease manager: Call on every first
// attempt, Take before every retry.
type Budget struct{ b *budget }

// NewBudget returns a budget that allows ratio retries per call, with up to
// burst saved.
func NewBudget(burst, ratio float64) *Budget {
	b := newBudget(burst, ratio)
	return &Budget{b: &b}
}

// RetryBudget returns the client's own retry budget, so a layer above that
// retries too (the lease manager) draws from the same bucket and the two
// layers together stay within it.
func (c *Client) RetryBudget() *Budget { return &Budget{b: &c.budget} }

// Call records a first attempt, earning ratio retries.
func (b *Budget) Call() { b.b.onCall() }

// Take spends one retry; false when the budget is empty (do not retry).
func (b *Budget) Take() bool { return b.b.take() }

func defaultSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attemptFn runs one RPC on ep. It must pass p to the RPC as grpc.Peer(p):
// a filled-in peer tells the request may have reached the server.
type attemptFn func(ctx context.Context, ep *endpoint, p *peer.Peer) error

// do runs fn with routing and retries and returns nil or a *lease.Error.
func (c *Client) do(ctx context.Context, k kind, fn attemptFn) error {
	if c.closed.Load() {
		return lease.Errorf(lease.CodeCanceled, "client is closed")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		defer cancel()
	}
	c.budget.onCall()
	var (
		ep          = c.pick(k, nil)
		unreachable = make(map[*endpoint]bool)
		last        *lease.Error
		uncertain   bool // some attempt's outcome is unknown
		maxAttempts = max(c.cfg.MaxAttempts, len(c.endpoints())+1)
	)
	// finish keeps "not applied" codes honest: after an attempt whose
	// outcome is unknown, a later definite refusal says nothing about it.
	finish := func(e *lease.Error) error {
		if uncertain && k == kindWrite && notApplied(e.Code) {
			return &lease.Error{Code: lease.CodeUnknown, Message: "an earlier attempt's outcome is unknown; last attempt: " + e.Error(), Cause: e}
		}
		return e
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return finish(last)
			}
			return finish(ctxError(err, false, k))
		}
		var p peer.Peer
		err := fn(ctx, ep, &p)
		if err == nil {
			if k != kindStale {
				c.setLeader(ep)
			}
			return nil
		}
		last = c.classify(ctx, err, k, &p)
		if last.Code == lease.CodeUnknown {
			uncertain = true
		}
		if !retryable(last) || attempt >= maxAttempts {
			return finish(last)
		}
		next, delay, free := ep, time.Duration(0), false
		switch last.Code {
		case lease.CodeNotLeader:
			c.clearLeader(ep)
			if h := c.byHint(ctx, last); h != nil && h != ep {
				next, free = h, true
				break
			}
			// No other leader known (an election, or a leader still
			// establishing its term or handing over): back off, at least
			// as long as the server asked.
			next, delay = c.pick(k, ep), max(last.RetryAfter, c.backoff(attempt))
		case lease.CodeUnavailable:
			c.clearLeader(ep)
			unreachable[ep] = true
			if len(unreachable) >= len(c.endpoints()) {
				return finish(last) // no server can be reached: say so now
			}
			next, free = c.pickExcept(unreachable), true
		case lease.CodeOverloaded:
			delay = max(last.RetryAfter, c.backoff(attempt))
		default:
			delay = c.backoff(attempt)
		}
		if !free && !c.budget.take() {
			return finish(last)
		}
		if delay > 0 {
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
				return finish(last) // the retry could not finish in time
			}
			if err := c.cfg.Sleep(ctx, delay); err != nil {
				return finish(last)
			}
		}
		ep = next
	}
}

// notApplied reports whether a code promises the op was not applied.
func notApplied(c lease.Code) bool {
	switch c {
	case lease.CodeNotLeader, lease.CodeOverloaded, lease.CodeDeadlineExceeded, lease.CodeUnavailable:
		return true
	}
	return false
}

func retryable(e *lease.Error) bool {
	return e.Code.Retryable() && !errors.Is(e, errors.ErrUnsupported)
}

// ctxError reports the caller's context ending. Only a write that may have
// been sent may have been applied: an expired deadline is then CodeUnknown,
// as only the server can say "deadline exceeded, not applied".
func ctxError(err error, sent bool, k kind) *lease.Error {
	return lease.ContextError(err, sent && k == kindWrite)
}

// classify turns an RPC error into a *lease.Error. A status carrying
// Leasehold details is the server's own verdict and is restored as sent;
// anything else came from the transport or the caller's context and is
// classified by whether the request may have reached a server.
func (c *Client) classify(ctx context.Context, err error, k kind, p *peer.Peer) *lease.Error {
	st, ok := status.FromError(err)
	if !ok {
		return wire.AsError(err)
	}
	if e, ok := wire.FromStatus(st); ok {
		return e
	}
	sent := p.Addr != nil
	if cerr := ctx.Err(); cerr != nil {
		return ctxError(cerr, sent, k)
	}
	switch st.Code() {
	case codes.Unavailable:
		if sent && k == kindWrite {
			return &lease.Error{Code: lease.CodeUnknown, Message: "connection lost after the request was sent: " + st.Message()}
		}
		return &lease.Error{Code: lease.CodeUnavailable, Message: "server unreachable: " + st.Message()}
	case codes.Unimplemented:
		return &lease.Error{Code: lease.CodeUnknown, Message: st.Message(), Cause: errors.ErrUnsupported}
	case codes.ResourceExhausted: // without details: a message over the size limit
		return &lease.Error{Code: lease.CodeInvalidArgument, Field: "request", Message: st.Message()}
	case codes.DeadlineExceeded:
		return ctxError(context.DeadlineExceeded, sent, k)
	case codes.Canceled:
		return ctxError(context.Canceled, sent, k)
	case codes.Unauthenticated, codes.PermissionDenied:
		return &lease.Error{Code: wire.CodeFromGRPC(st.Code()), Message: st.Message()}
	}
	return &lease.Error{Code: lease.CodeUnknown, Message: st.Code().String() + ": " + st.Message()}
}
