package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// agent is one claimant: a unit agent in Juju's terms, with its own holder
// name, contending for one key. It behaves like Juju's leadership tracker:
// claim; while it holds, renew every RenewEvery (jittered); when denied, wait
// until the current lease should have run out and claim again; on errors,
// back off and retry while its lease is still safe.
type agent struct {
	h      *harness
	id     int32 // holder index
	key    int32
	keyStr string
	holder string
	sess   Session
	rng    *rand.Rand

	// restart is closed when the herd fires; nil once this agent has restarted.
	restart <-chan struct{}
}

// harness is what the agents of one target run share.
type harness struct {
	cfg      runConfig
	rec      *recorder
	opCtx    context.Context // parent of every call's context; cancelled only on abort
	stop     <-chan struct{} // closed when agents must stop issuing calls
	herd     <-chan struct{} // closed when every agent restarts (herd scenario)
	onAnswer func()          // test hook, may be nil
}

type wake uint8

const (
	wakeTimer wake = iota
	wakeStop
	wakeRestart
)

// sleep waits for d, the end of the run or a restart, whichever is first.
func (a *agent) sleep(d time.Duration) wake {
	select {
	case <-a.h.stop:
		return wakeStop
	default:
	}
	if d <= 0 {
		return wakeTimer
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return wakeTimer
	case <-a.h.stop:
		return wakeStop
	case <-a.restart:
		a.restart = nil
		return wakeRestart
	}
}

// jitter returns d scaled by a uniform factor in [1-f, 1+f].
func (a *agent) jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*a.rng.Float64()))
}

// backoff is full-jitter exponential backoff from 50 ms, capped at half the
// renew interval (and 5 s).
func (a *agent) backoff(attempt int) time.Duration {
	ceiling := min(a.h.cfg.RenewEvery/2, 5*time.Second)
	d := min(50*time.Millisecond<<min(attempt, 16), ceiling)
	return time.Duration(a.rng.Int64N(int64(d) + 1))
}

// call makes one call, records it and returns when it started and its result.
func (a *agent) call(op opKind) (start time.Time, code lease.Code, err error) {
	cfg := &a.h.cfg
	ctx, cancel := context.WithTimeout(a.h.opCtx, cfg.OpTimeout)
	defer cancel()
	start = time.Now()
	var g Grant
	switch op {
	case opClaim:
		g, err = a.sess.Claim(ctx, a.keyStr, a.holder, cfg.LeaseDuration)
	case opExtend:
		g, err = a.sess.Extend(ctx, a.keyStr, a.holder, cfg.LeaseDuration)
	case opRevoke:
		err = a.sess.Revoke(ctx, a.keyStr, a.holder)
	}
	end := time.Now()
	code = classify(err)
	if code == lease.CodeCanceled && a.h.opCtx.Err() != nil {
		return start, code, err // the run was aborted: not a result
	}
	a.h.rec.add(Record{
		Key: a.key, Holder: a.id, Op: op, Code: code,
		Start: a.h.rec.since(start), End: a.h.rec.since(end),
		Dur: cfg.LeaseDuration, Token: g.Token, Extended: g.Extended,
	})
	if a.h.onAnswer != nil {
		a.h.onAnswer()
	}
	// A denial's expiry, where the target needs a call of its own to find
	// it, is looked up after the claim was recorded, with its own deadline.
	if code == lease.CodeDenied {
		if f, ok := a.sess.(denialFiller); ok {
			fctx, cancel := context.WithTimeout(a.h.opCtx, cfg.OpTimeout)
			f.fillDenial(fctx, err)
			cancel()
		}
	}
	return start, code, err
}

// classify maps a session error into the lease taxonomy. Sessions should
// return *lease.Error; bare context errors are mapped here as a safety net:
// a client-side timeout says nothing about whether the op was applied, so it
// is unknown, not deadline_exceeded.
func classify(err error) lease.Code {
	if err == nil {
		return lease.CodeOK
	}
	var le *lease.Error
	if errors.As(err, &le) {
		return le.Code
	}
	if errors.Is(err, context.Canceled) {
		return lease.CodeCanceled
	}
	return lease.CodeUnknown
}

// run is the agent's life: it starts after startDelay and stops at the end of
// the run, after its call in flight (bounded by OpTimeout) has returned.
func (a *agent) run(startDelay time.Duration) {
	cfg := &a.h.cfg
	if a.sleep(startDelay) == wakeStop {
		return
	}
	holding := false
	var safeUntil, nextRenew time.Time
	attempt := 0
	for {
		var w wake
		if !holding {
			start, code, err := a.call(opClaim)
			switch code {
			case lease.CodeOK:
				holding, attempt = true, 0
				safeUntil = start.Add(cfg.LeaseDuration)
				nextRenew = start.Add(a.jitter(cfg.RenewEvery, 0.1))
				w = a.sleep(time.Until(nextRenew))
			case lease.CodeDenied:
				// Wait until the holder's lease would run out (when the
				// server says), else about one renew interval.
				wait := a.jitter(cfg.RenewEvery, 0.25)
				var le *lease.Error
				if errors.As(err, &le) && le.ExpiresIn > 0 {
					wait = le.ExpiresIn + time.Duration(a.rng.Int64N(int64(cfg.RenewEvery/10)+1))
				}
				attempt = 0
				w = a.sleep(wait)
			default:
				w = a.sleep(a.retryWait(err, attempt))
				attempt++
			}
		} else {
			op := opExtend
			if a.rng.Float64() < cfg.RevokeChance {
				op = opRevoke
			}
			start, code, err := a.call(op)
			switch {
			case op == opRevoke:
				// Gave up leadership (if the call failed, the lease may be
				// gone anyway, or runs out); come back later.
				holding, attempt = false, 0
				w = a.sleep(a.jitter(cfg.RenewEvery, 0.5))
			case code == lease.CodeOK:
				attempt = 0
				safeUntil = start.Add(cfg.LeaseDuration)
				nextRenew = start.Add(a.jitter(cfg.RenewEvery, 0.1))
				w = a.sleep(time.Until(nextRenew))
			case code == lease.CodeNotHeld || code == lease.CodeDenied:
				holding, attempt = false, 0 // lost it: claim again at once
			default:
				wait := a.retryWait(err, attempt)
				attempt++
				if time.Now().Add(wait).After(safeUntil) {
					holding = false // lapsed: it can no longer count on the lease
				}
				w = a.sleep(wait)
			}
		}
		switch w {
		case wakeStop:
			return
		case wakeRestart:
			holding, attempt = false, 0 // the agent restarted: all local state is gone
		}
		select {
		case <-a.h.stop:
			return
		default:
		}
	}
}

// retryWait is how long to wait after a failed call: the server's
// retry-after when it gave one, else backoff.
func (a *agent) retryWait(err error, attempt int) time.Duration {
	var le *lease.Error
	if errors.As(err, &le) && le.Code == lease.CodeOverloaded && le.RetryAfter > 0 {
		return le.RetryAfter + a.backoff(0)
	}
	return a.backoff(attempt)
}
