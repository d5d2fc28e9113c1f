package backend

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/lease"
)

// naiveDefaults gives the naive mode the admission queue's default
// deadlines and margin, so the baseline stamps ops as the queue would.
var naiveDefaults = admission.DefaultSettings()

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
		d := naiveDefaults.Deadlines.For(cmds[i].Op)
		if dl, ok := ctx.Deadline(); ok {
			d = min(d, dl.Sub(local))
		}
		if d -= naiveDefaults.DeadlineMargin; d <= 0 {
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
				err := lease.ContextError(ctx.Err(), true)
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
