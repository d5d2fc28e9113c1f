package grpcserver

import (
	"context"
	"errors"
	"time"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// Loader is implemented by backends that can say how loaded their write
// path is (node.Node: the admission queue's stats). The server uses it to
// suggest longer renew intervals under load; without it the suggestion is
// always half the lease's remaining time.
type Loader interface {
	// Load is the number of queued ops and the wait a claim arriving now
	// is expected to see.
	Load() (depth int, wait time.Duration)
}

// Renewal suggestions: the renew_fraction setting's share of the remaining
// time when idle (0.5 by default: a holder then has half a lease to retry
// in), stretched linearly to halfway between it and the whole remaining
// time (0.75 by default) as the expected queue wait grows to renewLoadWait,
// so a herd renews less often exactly when the leader is busiest (Chubby's
// and Consul's answer).
const (
	defaultRenewFraction = 0.5
	renewLoadWait        = 500 * time.Millisecond
)

// renewAfter is the suggested renew interval for a lease with remaining
// time left, at the backend's current load.
func (s *Server) renewAfter(left time.Duration) time.Duration {
	if left <= 0 {
		return 0
	}
	frac := defaultRenewFraction
	if r, ok := s.b.(RenewFractioner); ok {
		if f := r.RenewFraction(); f > 0 && f < 1 {
			frac = f
		}
	}
	busy := frac + (1-frac)/2
	if l, ok := s.b.(Loader); ok {
		_, wait := l.Load()
		load := min(1, float64(wait)/float64(renewLoadWait))
		frac += (busy - frac) * load
	}
	return time.Duration(frac * float64(left))
}

// resultPB converts a successful result and adds the renew suggestion.
func (s *Server) resultPB(k lease.Key, r *lease.Result) *pb.OpResult {
	return s.withRenewAfter(wire.ResultPB(k, r), r)
}

// withRenewAfter adds the renewal hint to out, the conversion of r.
func (s *Server) withRenewAfter(out *pb.OpResult, r *lease.Result) *pb.OpResult {
	if r.Outcome == lease.OutcomeGranted || r.Outcome == lease.OutcomeExtended {
		out.RenewAfterMs = wire.Ms(s.renewAfter(r.Expiry - r.Now))
	}
	return out
}

// Queued claims made by WaitUntilReleased keep their place for
// defaultQueueWait unless the request says otherwise, and are refreshed
// every third of it while the stream lives.
const defaultQueueWait = 15 * time.Second

// errWaitDone stops the watch once the wait has its answer.
var errWaitDone = errors.New("wait done")

// WaitUntilReleased implements the plain wait and claim-on-release on top of
// the backend's watch: the watch is registered before the lease is read or
// the claim queued, so no release between the two is missed, and nothing
// polls.
func (s *Server) WaitUntilReleased(r *pb.WaitRequest, stream pb.Leasehold_WaitUntilReleasedServer) error {
	w, ok := s.b.(Watcher)
	if !ok {
		return errorf(lease.CodeInvalidArgument, "wait is not supported by this server's backend")
	}
	k := wire.Key(r.Key)
	if err := k.Validate(); err != nil {
		return statusErr(err)
	}
	var claim *lease.Command
	if r.Holder != "" {
		wait := wire.FromMs(r.WaitMs)
		if wait == 0 {
			wait = defaultQueueWait
		}
		wait = max(wait, MinQueueWait)
		claim = &lease.Command{Op: lease.OpQueueClaim, Key: k, Holder: r.Holder, Duration: wire.FromMs(r.DurationMs), Wait: wait}
		if err := claim.Validate(s.limits()); err != nil {
			return statusErr(err)
		}
	}
	release, err := s.watches.acquire(stream.Context())
	if err != nil {
		return statusErr(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(stream.Context())
	events := make(chan []lease.Event, 16)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- w.Watch(ctx, 0, WatchFilter{Namespace: k.Namespace, Group: k.Group, Name: k.Name}, func(_ uint64, b []lease.Event) error {
			select {
			case events <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() { cancel(); <-watchErr }()
	select { // registered
	case <-events:
	case err := <-watchErr:
		watchErr <- err
		return watchFailed(err)
	case <-ctx.Done():
		return statusErr(lease.Errorf(lease.CodeCanceled, "canceled by the caller"))
	}
	if claim == nil {
		return s.waitReleased(ctx, k, stream, events, watchErr)
	}
	return s.claimOnRelease(ctx, claim, stream, events, watchErr)
}

// watchFailed is the error of a wait whose watch ended. A compacted watch
// (this server installed a snapshot, or the wait fell behind) is not the
// caller's to handle: it is Unavailable, and the client's retry re-reads or
// queues again.
func watchFailed(err error) error {
	if lease.CodeOf(err) == lease.CodeCompacted {
		return statusErr(&lease.Error{Code: lease.CodeUnavailable, Message: "the wait's watch was reset; retry", Cause: err})
	}
	return statusErr(err)
}

func (s *Server) waitReleased(ctx context.Context, k lease.Key, stream pb.Leasehold_WaitUntilReleasedServer, events <-chan []lease.Event, watchErr chan error) error {
	found := false
	meta, err := s.b.Read(ctx, false, func(m *fsm.Machine, at time.Duration) { _, found = m.Get(k, at) })
	if err != nil {
		return statusErr(err)
	}
	for found {
		select {
		case b := <-events:
			for _, e := range b {
				// Events the read already reflects (applied at or before
				// its index, buffered since the watch was registered) are
				// about an earlier tenure: only a release after the read
				// ends the one it saw.
				if e.Index > meta.AppliedIndex && (e.Kind == lease.EventRevoked || e.Kind == lease.EventExpired) {
					found = false
				}
			}
		case err := <-watchErr:
			watchErr <- err
			return watchFailed(err)
		case <-ctx.Done():
			return statusErr(lease.Errorf(lease.CodeCanceled, "canceled by the caller"))
		}
	}
	return stream.Send(&pb.WaitResponse{State: pb.WaitState_WAIT_STATE_RELEASED, Result: &pb.OpResult{Key: wire.KeyPB(k)}})
}

func (s *Server) writeOne(ctx context.Context, c lease.Command) (lease.Result, error) {
	res, err := s.b.Write(ctx, []lease.Command{c})
	if err == nil && len(res) != 1 {
		err = lease.Errorf(lease.CodeUnknown, "backend returned %d results for 1 command", len(res))
	}
	if err != nil {
		return lease.Result{}, err
	}
	return res[0], res[0].Err()
}

func (s *Server) claimOnRelease(ctx context.Context, c *lease.Command, stream pb.Leasehold_WaitUntilReleasedServer, events <-chan []lease.Event, watchErr chan error) (err error) {
	granted := false
	defer func() {
		if granted || stream.Context().Err() == nil {
			return // granted, or the server ended the stream: the place is kept for a retry
		}
		// The caller went away: give its place up now rather than at its
		// keep-alive. Best effort; the keep-alive bounds an orphan anyway.
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.writeOne(bg, lease.Command{Op: lease.OpCancelQueue, Key: c.Key, Holder: c.Holder})
	}()
	// A grant whose Send fails is left to its holder, never revoked here:
	// the client may already have collected the same tenure on another
	// stream (its retry's queue write answers "extended"), and this server
	// cannot know. Revoking it, even by its exact token, would release a
	// lease the client was told it holds and grant it to the next waiter.
	// An undelivered grant is collected by the client's retry or expires.
	grant := func(r *lease.Result) error {
		if err := stream.Send(&pb.WaitResponse{State: pb.WaitState_WAIT_STATE_GRANTED, Result: s.resultPB(c.Key, r)}); err != nil {
			return err
		}
		granted = true
		return nil
	}
	res, err := s.writeOne(ctx, *c)
	if err != nil {
		return statusErr(err)
	}
	if res.Outcome != lease.OutcomeQueued {
		return grant(&res)
	}
	if err := stream.Send(&pb.WaitResponse{State: pb.WaitState_WAIT_STATE_QUEUED, Result: s.resultPB(c.Key, &res)}); err != nil {
		return err
	}
	// Only a grant made after this stream's queue write is this stream's:
	// the watch also holds events applied before it (a tenure of the same
	// holder that was released again before the write, which the write then
	// queued behind). Tokens of one key increase with every tenure, so a
	// grant after the write has a token above that of the lease it queued
	// behind.
	after := res.Token
	refresh := time.NewTicker(c.Wait / 3)
	defer refresh.Stop()
	for {
		select {
		case b := <-events:
			for _, e := range b {
				if e.Kind == lease.EventClaimed && e.Holder == c.Holder && e.Token > after {
					r := lease.Result{Outcome: lease.OutcomeGranted, Holder: e.Holder, Token: e.Token, Start: e.Now, Expiry: e.Expiry, Now: e.Now}
					return grant(&r)
				}
			}
		case <-refresh.C:
			res, err := s.writeOne(ctx, *c)
			switch {
			case err == nil && res.Outcome != lease.OutcomeQueued:
				return grant(&res)
			case err != nil && !lease.IsRetryable(err):
				return statusErr(err)
			}
			// A failed refresh is retried at the next tick, well inside the keep-alive.
		case err := <-watchErr:
			watchErr <- err
			return watchFailed(err)
		case <-ctx.Done():
			return statusErr(lease.Errorf(lease.CodeCanceled, "canceled by the caller"))
		}
	}
}

// RenewFractioner is implemented by backends whose renew fraction is the
// replicated renew_fraction setting.
type RenewFractioner interface {
	RenewFraction() float64
}

// MinQueueWait is the floor of a claim-on-release's keep-alive (wait_ms):
// the stream refreshes its place every third of it, a Raft write each, so a
// smaller value is raised to it.
const MinQueueWait = 3 * time.Second
