package node

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Default deadlines when the caller's context has none (or a later one).
// Renewals get longer than claims: a holder keeping its lease matters more
// than a newcomer, and Juju's equivalent setting never took effect.
const (
	defaultClaimDeadline   = 3 * time.Second
	defaultRenewalDeadline = 10 * time.Second
)

// replyMargin is kept back from the caller's deadline so the answer reaches
// the caller before it gives up: the state machine refuses the op once
// replicated time passes caller deadline minus margin.
func replyMargin(remaining time.Duration) time.Duration {
	return 5*time.Millisecond + remaining/20
}

// writeDirect proposes one entry per call (no admission control). It is the
// "naive" configuration and the fallback before the queue is attached.
func (n *Node) writeDirect(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	now, ok := n.r.Now()
	if !ok {
		return nil, n.r.NotLeaderError()
	}
	local := time.Now()
	for i := range cmds {
		d := defaultClaimDeadline
		if cmds[i].Op.IsRenewal() {
			d = defaultRenewalDeadline
		}
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, dl.Sub(local))
		}
		d -= replyMargin(d)
		if d <= 0 {
			return nil, lease.Errorf(lease.CodeDeadlineExceeded, "deadline too close to propose; not applied")
		}
		cmds[i].Deadline = now + d
	}
	p, err := n.r.Propose(cmds)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
		return p.Result()
	case <-ctx.Done():
		return nil, proposedContextError(ctx.Err())
	}
}

// proposedContextError is the answer to a caller that gave up after its op
// was proposed: the op may still be applied.
func proposedContextError(err error) error {
	if err == context.DeadlineExceeded {
		return &lease.Error{Code: lease.CodeUnknown, Message: "deadline passed after the operation was proposed; it may or may not be applied", Cause: err}
	}
	return &lease.Error{Code: lease.CodeCanceled, Message: "canceled after the operation was proposed; it may still be applied", Cause: err}
}
