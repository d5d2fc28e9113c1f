package bench

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// BulkSession is a Session that can carry many agents' ops in one call (as
// Leasehold's Bulk RPC does). When a target's sessions implement it, the
// harness multiplexes the agents of each session onto bulk calls the way a
// lease manager would: ops that arrive while a bulk call is in flight are
// sent together in the next one (no timers), at most MaxBulk per call.
// Options.NoBulk turns this off.
type BulkSession interface {
	Session
	// Bulk runs ops and returns one result per op, in order, or an error
	// that applies to all of them (classified like Session errors).
	Bulk(ctx context.Context, ops []BulkOp) ([]BulkResult, error)
}

// BulkOp is one op of a bulk call: Op is lease.OpClaim, OpExtend or
// OpRevoke; Key and Holder as for Session; Duration for claims and extends.
type BulkOp struct {
	Op       lease.Op
	Key      string
	Holder   string
	Duration time.Duration
}

// BulkResult is one op's answer: a grant (claim, extend) or an error.
type BulkResult struct {
	Grant Grant
	Err   error
}

// MaxBulk is the most ops the harness puts in one bulk call.
const MaxBulk = 256

// batcher turns one BulkSession into a Session shared by many agents.
type batcher struct {
	bs BulkSession

	mu      sync.Mutex
	pending []*pendingOp
	running bool
	calls   uint64 // bulk calls made
	wg      sync.WaitGroup
}

type pendingOp struct {
	ctx  context.Context
	op   BulkOp
	done chan BulkResult
}

func (b *batcher) do(ctx context.Context, op BulkOp) (Grant, error) {
	p := &pendingOp{ctx: ctx, op: op, done: make(chan BulkResult, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, p)
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case r := <-p.done:
		return r.Grant, r.Err
	case <-ctx.Done():
		// The op may be in a bulk call in flight: its outcome is unknown.
		return Grant{}, &lease.Error{Code: lease.CodeUnknown, Message: "timed out waiting for the bulk call", Cause: ctx.Err()}
	}
}

// loop sends bulk calls until nothing is pending.
func (b *batcher) loop() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		var batch []*pendingOp
		n := 0
		for _, p := range b.pending {
			if n >= MaxBulk {
				break
			}
			n++
			if p.ctx.Err() != nil { // never sent: certainly not applied
				p.done <- BulkResult{Err: &lease.Error{Code: lease.CodeDeadlineExceeded, Message: "expired in the client's batch queue; not sent"}}
				continue
			}
			batch = append(batch, p)
		}
		b.pending = b.pending[n:]
		if n == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		if len(batch) > 0 {
			b.calls++
		}
		b.mu.Unlock()
		if len(batch) > 0 {
			b.send(batch)
		}
	}
}

// send makes one bulk call with the earliest deadline of its ops.
func (b *batcher) send(batch []*pendingOp) {
	deadline, _ := batch[0].ctx.Deadline()
	ops := make([]BulkOp, len(batch))
	for i, p := range batch {
		ops[i] = p.op
		if d, ok := p.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(batch[0].ctx), deadline)
	defer cancel()
	res, err := b.bs.Bulk(ctx, ops)
	for i, p := range batch {
		switch {
		case err != nil:
			p.done <- BulkResult{Err: err}
		case i < len(res):
			p.done <- res[i]
		default:
			p.done <- BulkResult{Err: lease.Errorf(lease.CodeUnknown, "bulk call returned %d results for %d ops", len(res), len(ops))}
		}
	}
}

// bulkSession adapts a batcher to Session for the agents.
type bulkSession struct{ b *batcher }

func (s bulkSession) Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	return s.b.do(ctx, BulkOp{Op: lease.OpClaim, Key: key, Holder: holder, Duration: d})
}

func (s bulkSession) Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	return s.b.do(ctx, BulkOp{Op: lease.OpExtend, Key: key, Holder: holder, Duration: d})
}

func (s bulkSession) Revoke(ctx context.Context, key, holder string) error {
	_, err := s.b.do(ctx, BulkOp{Op: lease.OpRevoke, Key: key, Holder: holder})
	return err
}

// Close waits for the bulk call in flight, if any, then closes the session.
func (s bulkSession) Close() error {
	s.b.wg.Wait()
	return s.b.bs.Close()
}
