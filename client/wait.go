package client

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// maxWait bounds a wait whose context has no deadline (do would otherwise
// apply DefaultTimeout, which is for calls, not for waits).
const maxWait = 24 * time.Hour

func waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, maxWait)
}

// WaitUntilReleased returns once key is not held: at once if it is absent,
// else when its holder revokes it or it expires (the server watches the
// applied log: no polling and no fixed delay).
func (c *Client) WaitUntilReleased(ctx context.Context, key lease.Key) error {
	_, err := c.wait(ctx, &pb.WaitRequest{Key: wire.KeyPB(key)}, nil)
	return err
}

// ClaimOnRelease claims key for holder for d, waiting its turn: granted at
// once if absent (extended if holder holds it), else queued in the state
// machine behind earlier claimants and granted when the lease is released,
// one claimant per release. onQueued, if not nil, is called with the queued
// result (holder ahead, position). wait is how long the server-side place
// survives a broken stream (0: the server's default); the server refreshes
// it while the call lives and gives it up when ctx ends.
//
// A grant is reported only once an extend sent after it confirms that
// holder still holds the lease (as the manager does): a grant learnt from a
// stream may be stale (made long before it was delivered, or released since),
// and the call's start says nothing about when it was made. The result is
// the confirming extend's; its ExpiresIn is reduced by the time since that
// extend was sent, so the lease is held for at least ExpiresIn from the
// moment ClaimOnRelease returns. A confirmation that finds the tenure gone
// queues again.
func (c *Client) ClaimOnRelease(ctx context.Context, key lease.Key, holder string, d, wait time.Duration, onQueued func(Result)) (Result, error) {
	ctx, cancel := waitCtx(ctx)
	defer cancel()
	req := &pb.WaitRequest{Key: wire.KeyPB(key), Holder: holder, DurationMs: wire.Ms(d), WaitMs: wire.Ms(wait)}
	for {
		g, err := c.wait(ctx, req, onQueued)
		if err != nil {
			return g, err
		}
		sent := time.Now()
		cctx, ccancel := context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		r, err := c.Extend(cctx, key, holder, d)
		ccancel()
		switch {
		case err == nil:
			r.Outcome = g.Outcome
			r.ExpiresIn = max(0, r.ExpiresIn-time.Since(sent))
			return r, nil
		case ctx.Err() != nil:
			return Result{}, err
		case errors.Is(err, lease.ErrNotHeld) || lease.IsRetryable(err):
			// Gone already, or not confirmed: queue again (a retried
			// queue claim answers at once if holder still holds it).
		default:
			return Result{}, err
		}
	}
}

func (c *Client) wait(ctx context.Context, req *pb.WaitRequest, onQueued func(Result)) (Result, error) {
	ctx, cancel := waitCtx(ctx)
	defer cancel()
	var out Result
	// A broken stream is retried like any call (queueing again keeps the
	// place the server still holds for us).
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		s, err := ep.api.WaitUntilReleased(ctx, req, grpc.Peer(p))
		if err != nil {
			return err
		}
		for {
			resp, err := s.Recv()
			if err != nil {
				return err
			}
			switch resp.State {
			case pb.WaitState_WAIT_STATE_QUEUED:
				if onQueued != nil {
					onQueued(result(resp.Result))
				}
			case pb.WaitState_WAIT_STATE_GRANTED, pb.WaitState_WAIT_STATE_RELEASED:
				out = result(resp.Result)
				return nil
			}
		}
	})
	return out, err
}
