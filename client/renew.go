package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// maxRenewalsPerMessage caps the renewals packed into one stream message,
// well under the server's per-message limit (its MaxBulkOps, 10,000 by
// default).
const maxRenewalsPerMessage = 1000

// Renewer renews leases over one long-lived Renew stream per server (the
// leader, in practice) instead of one unary call per renewal: a renewal is
// one small message each way, and renewals sent together share a message
// and a Write on the server. Every renewal is still replicated through the
// log, exactly as Client.Extend's is. Many Extends may be outstanding at
// once, from any number of goroutines.
//
// Answers and errors are those of Client.Extend, with the same routing and
// retries: a stream on a server that is not (or no longer) the leader ends
// with CodeNotLeader, and the renewals it left unanswered, which the server
// promises it never started, are sent again to the leader. A stream that
// breaks otherwise answers its renewals already sent with CodeUnknown
// (never silently dropped) and those not yet sent with CodeUnavailable
// (then retried on another server).
//
// Get it with Client.Renewer; Client.Close closes it.
type Renewer struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	nextID atomic.Uint64
	unary  atomic.Bool    // a server did not serve Renew: use Client.Extend
	wg     sync.WaitGroup // the streams' goroutines

	mu      sync.Mutex
	closed  bool
	streams map[*endpoint]*renewConn
}

// Renewer returns the client's renewer (one per client, made on first use).
func (c *Client) Renewer() *Renewer {
	c.renewOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		c.renewer = &Renewer{c: c, ctx: ctx, cancel: cancel, streams: make(map[*endpoint]*renewConn)}
	})
	return c.renewer
}

// close ends every stream (renewals in flight end CodeUnknown if sent,
// CodeCanceled if not) and waits for the streams' goroutines.
func (r *Renewer) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// Extend extends holder's lease on key to d from now over the renewal
// stream; as Client.Extend otherwise (lease.ErrNotHeld if holder does not
// hold it). ctx's deadline (or the client's DefaultTimeout) travels with the
// renewal: not applied by then is CodeDeadlineExceeded, unknown is
// CodeUnknown, as for a unary call.
func (r *Renewer) Extend(ctx context.Context, key lease.Key, holder string, d time.Duration) (Result, error) {
	if r.unary.Load() {
		return r.c.Extend(ctx, key, holder, d)
	}
	var out *pb.OpResult
	err := r.c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, _ *peer.Peer) error {
		rc, err := r.conn(ctx, ep)
		if err != nil {
			return err
		}
		ren := &pb.Renewal{Id: r.nextID.Add(1), Key: wire.KeyPB(key), Holder: holder, DurationMs: wire.Ms(d)}
		if dl, ok := ctx.Deadline(); ok {
			// Truncated, so the server gives up no later than the caller and
			// can still answer "not applied".
			left := time.Until(dl).Milliseconds()
			if left <= 0 {
				return ctxError(context.DeadlineExceeded, false, kindWrite)
			}
			ren.TimeoutMs = left
		}
		res, err := rc.call(ctx, ren)
		out = res
		return err
	})
	if errors.Is(err, errors.ErrUnsupported) {
		// A server without Renew (older than the client) applied nothing:
		// renew with unary calls from now on.
		r.unary.Store(true)
		return r.c.Extend(ctx, key, holder, d)
	}
	if err != nil {
		return Result{}, err
	}
	return result(out), nil
}

// errUnsupported marks the answer of a server that does not serve Renew.
var errUnsupported = &lease.Error{Code: lease.CodeUnknown, Message: "the server does not serve Renew", Cause: errors.ErrUnsupported}

// conn returns ep's open stream, opening one if needed. The open is not
// under r.mu (it can wait for a connection) and ends when ctx does.
func (r *Renewer) conn(ctx context.Context, ep *endpoint) (*renewConn, error) {
	r.mu.Lock()
	rc, closed := r.streams[ep], r.closed || r.c.closed.Load()
	r.mu.Unlock()
	if closed {
		return nil, lease.Errorf(lease.CodeCanceled, "client is closed")
	}
	if rc != nil {
		return rc, nil
	}
	sctx, cancel := context.WithCancel(r.ctx)
	stop := context.AfterFunc(ctx, cancel) // the caller gives up while it opens
	stream, err := ep.api.Renew(sctx)
	if !stop() {
		cancel()
		return nil, ctxError(ctx.Err(), false, kindWrite)
	}
	if err != nil {
		cancel()
		// Nothing was sent: the transport's verdict is "unreachable".
		return nil, r.c.classify(ctx, err, kindWrite, &peer.Peer{})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		cancel()
		return nil, lease.Errorf(lease.CodeCanceled, "client is closed")
	}
	if rc := r.streams[ep]; rc != nil { // another caller opened one meanwhile
		cancel()
		return rc, nil
	}
	rc = &renewConn{r: r, ep: ep, stream: stream, cancel: cancel, wake: make(chan struct{}, 1), calls: make(map[uint64]*renewCall)}
	r.streams[ep] = rc
	r.wg.Add(2)
	go rc.sendLoop(sctx)
	go rc.recvLoop()
	return rc, nil
}

// drop forgets rc so the next renewal on its server opens a new stream.
func (r *Renewer) drop(rc *renewConn) {
	r.mu.Lock()
	if r.streams[rc.ep] == rc {
		delete(r.streams, rc.ep)
	}
	r.mu.Unlock()
}

// renewConn is one open Renew stream.
type renewConn struct {
	r      *Renewer
	ep     *endpoint
	stream pb.Leasehold_RenewClient
	cancel context.CancelFunc
	wake   chan struct{} // renewals are queued (capacity 1)

	mu    sync.Mutex
	ended bool                  // the stream ended: no new calls
	calls map[uint64]*renewCall // queued or sent, unanswered
	queue []*pb.Renewal         // not yet taken by the sender
}

type renewCall struct {
	ch   chan renewAnswer // capacity 1: answered exactly once
	sent bool             // taken by the sender: the server may have it
}

type renewAnswer struct {
	res *pb.OpResult
	err *lease.Error
}

// call queues ren and waits for its answer or ctx.
func (rc *renewConn) call(ctx context.Context, ren *pb.Renewal) (*pb.OpResult, error) {
	call := &renewCall{ch: make(chan renewAnswer, 1)}
	rc.mu.Lock()
	if rc.ended {
		rc.mu.Unlock()
		return nil, &lease.Error{Code: lease.CodeUnavailable, Message: "renewal stream ended before the renewal was sent"}
	}
	rc.calls[ren.Id] = call
	rc.queue = append(rc.queue, ren)
	rc.mu.Unlock()
	select {
	case rc.wake <- struct{}{}:
	default:
	}
	select {
	case a := <-call.ch:
		return a.result()
	case <-ctx.Done():
	}
	rc.mu.Lock()
	_, waiting := rc.calls[ren.Id]
	delete(rc.calls, ren.Id) // the sender skips it if not yet sent
	sent := call.sent
	rc.mu.Unlock()
	if !waiting { // answered meanwhile
		return (<-call.ch).result()
	}
	return nil, ctxError(ctx.Err(), sent, kindWrite)
}

func (a renewAnswer) result() (*pb.OpResult, error) {
	if a.err != nil {
		return nil, a.err
	}
	return a.res, nil
}

// sendLoop sends the queued renewals, packed, until the stream ends.
func (rc *renewConn) sendLoop(ctx context.Context) {
	defer rc.r.wg.Done()
	for {
		select {
		case <-rc.wake:
		case <-ctx.Done():
			return
		}
		for {
			rc.mu.Lock()
			var batch []*pb.Renewal
			n := 0
			for _, ren := range rc.queue {
				n++
				if call := rc.calls[ren.Id]; call != nil {
					call.sent = true
					batch = append(batch, ren)
					if len(batch) == maxRenewalsPerMessage {
						break
					}
				}
			}
			rc.queue = rc.queue[n:]
			if len(rc.queue) == 0 {
				rc.queue = nil
			}
			rc.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if err := rc.stream.Send(&pb.RenewRequest{Renewals: batch}); err != nil {
				// The stream is over; recvLoop learns why and answers.
				return
			}
		}
	}
}

// recvLoop delivers answers until the stream ends, then answers every
// renewal left.
func (rc *renewConn) recvLoop() {
	defer rc.r.wg.Done()
	for {
		resp, err := rc.stream.Recv()
		if err != nil {
			rc.end(err)
			return
		}
		for _, a := range resp.Answers {
			rc.mu.Lock()
			call := rc.calls[a.Id]
			delete(rc.calls, a.Id)
			rc.mu.Unlock()
			if call == nil {
				continue // its caller gave up
			}
			if a.Error != nil {
				call.ch <- renewAnswer{err: wire.Error(a.Error)}
			} else {
				call.ch <- renewAnswer{res: a.Result}
			}
		}
	}
}

// end answers every unanswered renewal once the stream is over. A server
// that ends the stream with its own verdict (not the leader, overloaded,
// refused) started none of them: that verdict is their answer. Otherwise
// the sent ones may have been applied (CodeUnknown) and the rest were not
// (CodeUnavailable, or CodeCanceled when the client is closing).
func (rc *renewConn) end(err error) {
	rc.r.drop(rc)
	rc.cancel()
	rc.mu.Lock()
	rc.ended = true
	calls := rc.calls
	rc.calls, rc.queue = nil, nil
	rc.mu.Unlock()
	var verdict *lease.Error
	if st, ok := status.FromError(err); ok {
		if e, ok := wire.FromStatus(st); ok && e.Code != lease.CodeUnknown {
			verdict = e
		} else if st.Code() == codes.Unimplemented {
			verdict = errUnsupported
		}
	}
	closing := rc.r.ctx.Err() != nil
	for _, call := range calls {
		var e *lease.Error
		switch {
		case verdict != nil:
			e = verdict
		case call.sent:
			e = &lease.Error{Code: lease.CodeUnknown, Message: "renewal stream broke after the renewal was sent; it may have been applied: " + err.Error()}
		case closing:
			e = lease.Errorf(lease.CodeCanceled, "client is closed")
		default:
			e = &lease.Error{Code: lease.CodeUnavailable, Message: "renewal stream broke before the renewal was sent: " + err.Error()}
		}
		call.ch <- renewAnswer{err: e}
	}
}
