package election

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Callbacks are what Run calls. OnStartedLeading is required.
type Callbacks struct {
	// OnStartedLeading runs, in its own goroutine, once this candidate
	// leads. ctx is cancelled when leadership ends or might have ended
	// (context.Cause says why); the function must return promptly then.
	// token is the term's fencing token.
	OnStartedLeading func(ctx context.Context, token uint64)
	// OnStoppedLeading is called after OnStartedLeading has returned and
	// the lease has been resigned (or lost).
	OnStoppedLeading func()
	// OnNewLeader is called with the leader's ID each time another
	// candidate (or this one) becomes leader, in order, from one goroutine.
	OnNewLeader func(id string)
}

// Run campaigns until this candidate leads, runs OnStartedLeading while it
// does, and returns when the term is over: ctx done (nil), OnStartedLeading
// returned (nil), or leadership lost (an error wrapping ErrLeadershipLost).
// Run does not campaign again; call it in a loop for that. It returns ctx's
// error if ctx ends before this candidate leads.
func Run(ctx context.Context, cfg Config, cb Callbacks) error {
	if cb.OnStartedLeading == nil {
		return errors.New("election: Callbacks.OnStartedLeading is required")
	}
	e, err := New(cfg)
	if err != nil {
		return err
	}
	defer e.Close()

	var obs sync.WaitGroup
	octx, stopObs := context.WithCancel(ctx)
	defer func() { stopObs(); obs.Wait() }()
	if cb.OnNewLeader != nil {
		obs.Add(1)
		go func() {
			defer obs.Done()
			last := ""
			e.follow(octx, func(cur Leader) bool {
				if cur.ID != "" && cur.ID != last {
					last = cur.ID
					cb.OnNewLeader(cur.ID)
				}
				return true
			})
		}()
	}

	ld, err := e.campaign(ctx, ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		cb.OnStartedLeading(ld.Context(), ld.Token())
	}()
	select {
	case <-ld.Done():
	case <-ran:
	}
	lost := ld.Err() // nil if the callback returned first
	ld.end(ErrResigned)
	<-ran
	// The work has stopped: release the office so the next candidate is
	// granted it now rather than at expiry.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if err := ld.Resign(rctx); err != nil {
		e.cfg.Logger.Warn("election: resign failed; the lease will expire", "key", e.cfg.Key, "err", err)
	}
	cancel()
	if cb.OnStoppedLeading != nil {
		cb.OnStoppedLeading()
	}
	if errors.Is(lost, ErrLeadershipLost) {
		return lost
	}
	return nil
}
