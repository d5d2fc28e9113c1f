package client

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// WatchOptions select the events to watch. Empty fields match everything;
// Group needs Namespace and Name needs Group.
type WatchOptions struct {
	Namespace, Group, Name string
	// StartIndex delivers events of log entries at index >= StartIndex
	// (0: from now on). Use a read's ReadMeta.AppliedIndex+1 to see every
	// change after that read. A StartIndex older than the server still holds
	// fails with lease.CodeCompacted (see Watcher.Next).
	StartIndex uint64
	// Extends delivers extends of a tenure (lease.EventExtended) too. A
	// server records them only while a watcher asks, so a StartIndex
	// before that fails with lease.CodeCompacted.
	Extends bool
}

// Watcher is an open watch. Close it when done.
type Watcher struct {
	c      *Client
	opts   WatchOptions
	ctx    context.Context
	cancel context.CancelFunc
	stream grpc.ServerStreamingClient[pb.WatchResponse]
	// next is the index to resume from after a broken stream: one past the
	// index the last response was current to (the created response's too,
	// so a break before the first event resumes where the watch began).
	next uint64
}

// ErrWatchUnsupported is matched (errors.Is) by the error of Watch against
// a server whose backend cannot stream events.
var ErrWatchUnsupported = errors.ErrUnsupported

// Watch opens a watch and returns once the server has registered it: every
// event applied after Watch returns will be delivered by Next. The watch
// lives until ctx is done or Close.
func (c *Client) Watch(ctx context.Context, o WatchOptions) (*Watcher, error) {
	wctx, cancel := context.WithCancel(ctx)
	w := &Watcher{c: c, opts: o, ctx: wctx, cancel: cancel, next: o.StartIndex}
	if err := w.open(); err != nil {
		cancel()
		return nil, err
	}
	return w, nil
}

// open starts a stream at w.next and waits for its "created" response.
func (w *Watcher) open() error {
	req := &pb.WatchRequest{Namespace: w.opts.Namespace, Group: w.opts.Group, Name: w.opts.Name, StartIndex: w.next, Extends: w.opts.Extends}
	// The stream lives on w.ctx, not on do's per-call context, which only
	// bounds the attempts to open it.
	return w.c.do(w.ctx, kindStale, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		s, err := ep.api.Watch(w.ctx, req, grpc.Peer(p))
		if err != nil {
			return err
		}
		first, err := s.Recv()
		if err != nil {
			return err
		}
		if !first.Created {
			return lease.Errorf(lease.CodeUnknown, "watch stream did not start with its created response")
		}
		w.next = max(w.next, first.Index+1)
		w.stream = s
		return nil
	})
}

// Next blocks until the next batch of events (in log order) and returns it.
// When the stream breaks for a retryable reason it reopens it, on any
// server, from one past the index the last response was current to, so no
// event is lost or repeated. It returns an error (lease.CodeCanceled once
// ctx is done or the watcher closed) when it cannot go on; the watch is over
// then. lease.CodeCompacted (errors.Is lease.ErrCompacted) means the events
// to resume from are gone (the server's history moved on, the watcher fell
// behind, or the server installed a snapshot): re-read what you track and
// watch again from the read's applied index + 1.
func (w *Watcher) Next() ([]lease.Event, error) {
	failures := 0 // consecutive broken streams with no event in between
	for {
		if w.stream == nil {
			if err := w.open(); err != nil {
				return nil, err
			}
		}
		resp, err := w.stream.Recv()
		if err == nil {
			w.next = max(w.next, resp.Index+1)
			if len(resp.Events) == 0 {
				continue // progress only
			}
			failures = 0
			out := make([]lease.Event, len(resp.Events))
			for i, e := range resp.Events {
				out[i] = wire.Event(e)
			}
			w.next = max(w.next, out[len(out)-1].Index+1)
			return out, nil
		}
		w.stream = nil
		var p peer.Peer
		le := w.c.classify(w.ctx, err, kindStale, &p)
		if w.ctx.Err() != nil {
			return nil, &lease.Error{Code: lease.CodeCanceled, Message: "watch closed", Cause: w.ctx.Err()}
		}
		failures++
		if !retryable(le) || failures >= w.c.cfg.MaxAttempts {
			return nil, le
		}
		// A stream that breaks again at once (a server ending slow
		// watchers, say) is reopened with backoff, not in a tight loop.
		if err := w.c.cfg.Sleep(w.ctx, max(le.RetryAfter, w.c.backoff(failures))); err != nil {
			return nil, &lease.Error{Code: lease.CodeCanceled, Message: "watch closed", Cause: err}
		}
	}
}

// Close ends the watch.
func (w *Watcher) Close() { w.cancel() }
