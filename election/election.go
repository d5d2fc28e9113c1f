package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/manager"
)

// ErrLeadershipLost is the cause (errors.Is) of a leading context cancelled
// because leadership ended or could no longer be vouched for.
var ErrLeadershipLost = errors.New("election: leadership lost")

// ErrResigned is the cause of a leading context cancelled by Resign.
var ErrResigned = errors.New("election: resigned")

// Config describes one candidate in one election.
type Config struct {
	// Client reaches the cluster; the election reads and watches the key
	// through it. Required.
	Client *client.Client
	// Manager claims and renews the lease. Optional: by default the
	// election makes its own over Client and closes it in Close. Share one
	// manager between many elections to batch their renewals; it must talk
	// to the same cluster as Client, and Clock must be its clock.
	Manager *manager.Manager
	// Key is the office: one lease key per election. Required.
	Key lease.Key
	// ID names this candidate: the lease holder while it leads. It must be
	// unique among the candidates (two processes with one ID are one
	// holder to the cluster). Required.
	ID string
	// Duration is the lease duration (default 15s). A leader that stops
	// renewing (crashed, partitioned) is replaced about this long after its
	// last renewal.
	Duration time.Duration
	// StopMargin is how long before SafeUntil the leading context is
	// cancelled when no renewal has been confirmed: the time the work has
	// to stop (default Duration/10, at least 50ms).
	StopMargin time.Duration
	// Clock is the manager's clock (default manager.SystemClock).
	Clock manager.Clock
	// Retry is the pause after a broken watch before it is reopened (250ms).
	Retry  time.Duration
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	switch {
	case c.Client == nil:
		return errors.New("election: Config.Client is required")
	case c.ID == "":
		return errors.New("election: Config.ID is required")
	case c.Key.Name == "":
		return errors.New("election: Config.Key is required")
	}
	if c.Duration <= 0 {
		c.Duration = 15 * time.Second
	}
	if c.StopMargin <= 0 {
		c.StopMargin = max(c.Duration/10, 50*time.Millisecond)
	}
	if c.StopMargin >= c.Duration {
		return fmt.Errorf("election: StopMargin %v must be shorter than Duration %v", c.StopMargin, c.Duration)
	}
	if c.Clock == nil {
		c.Clock = manager.SystemClock{}
	}
	if c.Retry <= 0 {
		c.Retry = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Election is one candidate's view of one election.
type Election struct {
	cfg    Config
	h      *manager.Handle
	ownMgr *manager.Manager // made by New, closed by Close

	mu     sync.Mutex
	closed bool
	terms  map[*Leadership]struct{} // terms not yet ended, for Close
}

// New checks cfg and makes a candidate. It does not campaign.
func New(cfg Config) (*Election, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	e := &Election{cfg: cfg, terms: map[*Leadership]struct{}{}}
	mgr := cfg.Manager
	if mgr == nil {
		mgr = manager.New(manager.Config{Transport: manager.FromClient(cfg.Client), Budget: cfg.Client.RetryBudget(),
			Clock: cfg.Clock, Logger: cfg.Logger})
		e.ownMgr = mgr
	}
	e.h = mgr.Handle(cfg.Key.Namespace, cfg.Key.Group)
	return e, nil
}

// ErrClosed is returned by Campaign after Close.
var ErrClosed = errors.New("election: closed")

// Close ends any term still held (its context is cancelled with a cause
// wrapping ErrLeadershipLost, since its renewals stop) and closes the
// manager New made (not one passed in Config). It does not resign: resign
// first to hand over at once, or the lease simply expires.
func (e *Election) Close() {
	e.mu.Lock()
	e.closed = true
	terms := make([]*Leadership, 0, len(e.terms))
	for ld := range e.terms {
		terms = append(terms, ld)
	}
	e.mu.Unlock()
	for _, ld := range terms {
		ld.end(fmt.Errorf("%w: election closed", ErrLeadershipLost))
		ld.done.Wait()
	}
	if e.ownMgr != nil {
		e.ownMgr.Close()
	}
}

// Leadership is one term of this candidate as leader.
type Leadership struct {
	e      *Election
	l      *manager.Lease
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{} // ends the monitor
	done   sync.WaitGroup
	once   sync.Once
}

// Campaign blocks until this candidate leads, then returns its term. ctx
// bounds only the wait: cancelling it withdraws the queued claim. The
// term's Context lives until leadership ends or Resign.
func (e *Election) Campaign(ctx context.Context) (*Leadership, error) {
	return e.campaign(ctx, context.Background())
}

// campaign is Campaign with the parent of the leading context.
func (e *Election) campaign(ctx, parent context.Context) (*Leadership, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	l, err := e.h.ClaimOnRelease(ctx, e.cfg.Key.Name, e.cfg.ID, e.cfg.Duration)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancelCause(parent)
	ld := &Leadership{e: e, l: l, ctx: lctx, cancel: cancel, stop: make(chan struct{})}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		cancel(ErrClosed)
		return nil, ErrClosed
	}
	e.terms[ld] = struct{}{}
	e.mu.Unlock()
	ld.done.Add(2)
	go ld.watchSafeUntil()
	go ld.watchKey()
	return ld, nil
}

// Context is cancelled when this term ends; context.Cause says why
// (ErrLeadershipLost or ErrResigned, wrapped). Do the leader's work under it.
func (ld *Leadership) Context() context.Context { return ld.ctx }

// Done is Context().Done().
func (ld *Leadership) Done() <-chan struct{} { return ld.ctx.Done() }

// Token is the term's fencing token: send it with every downstream write.
func (ld *Leadership) Token() uint64 { return ld.l.Token() }

// SafeUntil is the local monotonic instant until which the lease is
// guaranteed held; the Context ends StopMargin before it unless a renewal
// moves it later.
func (ld *Leadership) SafeUntil() time.Time { return ld.l.SafeUntil() }

// Err is why the term ended (nil while it lasts).
func (ld *Leadership) Err() error {
	if ld.ctx.Err() == nil {
		return nil
	}
	return context.Cause(ld.ctx)
}

// end cancels the term's context with cause (the first cause wins) and
// stops its monitors.
func (ld *Leadership) end(cause error) {
	ld.cancel(cause)
	ld.once.Do(func() {
		close(ld.stop)
		ld.e.mu.Lock()
		delete(ld.e.terms, ld)
		ld.e.mu.Unlock()
	})
}

// Resign ends the term: the context is cancelled first, then the lease is
// revoked so the next candidate is granted it at once. Stop the work before
// calling Resign (Run does): the revoke lets another leader start. Resign
// after the term was lost is harmless.
//
// A revoke that fails for a retryable reason (a leader change under way,
// say) is tried again, every Config.Retry, until ctx is done; then the
// error is returned and the lease simply expires.
func (ld *Leadership) Resign(ctx context.Context) error {
	ld.end(ErrResigned)
	ld.done.Wait()
	for {
		err := ld.e.h.Revoke(ctx, ld.e.cfg.Key.Name, ld.e.cfg.ID)
		switch {
		case err == nil:
			return nil
		case lease.CodeOf(err) == lease.CodeNotHeld:
			return nil // another candidate already leads: nothing of ours to release
		case !lease.CodeOf(err).Retryable() || ctx.Err() != nil:
			return err
		}
		ld.e.cfg.Logger.Debug("election: resign will retry", "key", ld.e.cfg.Key, "err", err)
		t := ld.e.cfg.Clock.NewTimer(ld.e.cfg.Retry)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// watchSafeUntil ends the term StopMargin before SafeUntil, re-arming
// whenever a renewal has moved SafeUntil later, and when the manager
// reports the lease lost.
func (ld *Leadership) watchSafeUntil() {
	defer ld.done.Done()
	clk := ld.e.cfg.Clock
	for {
		stopAt := ld.l.SafeUntil().Add(-ld.e.cfg.StopMargin)
		wait := stopAt.Sub(clk.Now())
		if wait <= 0 {
			ld.end(fmt.Errorf("%w: no renewal confirmed %v before the lease's safe time", ErrLeadershipLost, ld.e.cfg.StopMargin))
			return
		}
		t := clk.NewTimer(wait)
		select {
		case <-t.C():
		case <-ld.l.Lost():
			t.Stop()
			ld.end(fmt.Errorf("%w: %w", ErrLeadershipLost, ld.l.Err()))
			return
		case <-ld.stop:
			t.Stop()
			return
		}
	}
}

// watchKey ends the term as soon as the key is seen revoked, expired or
// held under another token.
func (ld *Leadership) watchKey() {
	defer ld.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-ld.stop:
		case <-ld.ctx.Done():
		}
		cancel()
	}()
	mine := ld.Token()
	ld.e.follow(ctx, func(cur Leader) bool {
		if cur.Token == mine && cur.ID == ld.e.cfg.ID {
			return true
		}
		what := "released"
		if cur.ID != "" {
			what = fmt.Sprintf("held by %s (token %d)", cur.ID, cur.Token)
		}
		ld.end(fmt.Errorf("%w: the key is %s", ErrLeadershipLost, what))
		return false
	})
	cancel()
}
