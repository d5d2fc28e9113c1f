package node

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Naive-mode deadlines, as the admission queue's defaults.
const (
	naiveClaimDeadline   = 3 * time.Second
	naiveRenewalDeadline = 10 * time.Second
	naiveMargin          = 20 * time.Millisecond
)

// writeNaive proposes every command as its own log entry, all at once, with
// no queue, no back pressure and no priority: the baseline the benchmark
// compares against. Deadlines are still stamped so the state machine's
// guarantees hold; only the admission machinery is missing.
func (n *Node) writeNaive(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	now, ok := n.r.Now()
	if !ok {
		return nil, n.r.NotLeaderError()
	}
	local := time.Now()
	results := make([]lease.Result, len(cmds))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range cmds {
		d := naiveClaimDeadline
		if cmds[i].Op.IsRenewal() {
			d = naiveRenewalDeadline
		}
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, dl.Sub(local))
		}
		if d -= naiveMargin; d <= 0 {
			results[i] = lease.Result{Code: lease.CodeDeadlineExceeded}
			continue
		}
		cmds[i].Deadline = now + d
		p, err := n.r.Propose(cmds[i : i+1])
		if err != nil {
			mu.Lock()
			firstErr = firstOf(firstErr, err)
			mu.Unlock()
			results[i] = lease.Result{Code: lease.CodeOf(err)}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-p.Done():
				res, err := p.Result()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErr = firstOf(firstErr, err)
					results[i] = lease.Result{Code: lease.CodeOf(err)}
					return
				}
				results[i] = res[0]
			case <-ctx.Done():
				err := proposedContextError(ctx.Err())
				mu.Lock()
				firstErr = firstOf(firstErr, err)
				// A zero Result reads as CodeOK: say what is known instead.
				results[i] = lease.Result{Code: lease.CodeOf(err), Message: err.Error()}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil && len(cmds) == 1 {
		return nil, firstErr
	}
	return results, nil
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// proposedContextError is the answer to a caller that gave up after its op
// was proposed: the op may still be applied.
func proposedContextError(err error) error {
	if err == context.DeadlineExceeded {
		return &lease.Error{Code: lease.CodeUnknown, Message: "deadline passed after the operation was proposed; it may or may not be applied", Cause: err}
	}
	return &lease.Error{Code: lease.CodeCanceled, Message: "canceled after the operation was proposed; it may still be applied", Cause: err}
}
