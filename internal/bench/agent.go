package bench

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// agent is one claimant: a unit agent in Juju's terms, with its own holder
// name, contending for one key. It behaves like Juju's leadership tracker:
// claim; while it holds, renew every RenewEvery (jittered); when denied, wait
// until the current lease should have run out and claim again; on errors,
// back off and retry while its lease is still safe.
//
// An agent is plain data, not a goroutine: the scheduler (sched.go) keeps
// every agent in a heap by the time of its next call and runs each call in
// a goroutine of its own. A 100x run has 1.2M agents; a goroutine and a
// timer each cost the generator gigabytes and more CPU than the servers.
// So the struct stays small: names and session are derived from id.
type agent struct {
	pcg       rand.PCG      // this agent's jitter, seeded from Seed and id
	safeUntil time.Duration // while holding: until when its last grant is safe (run offset)
	id        int32         // holder index, unique per agent
	key       int32
	attempt   int32  // failed calls in a row (backoff)
	epoch     uint32 // herds this agent has been through
	holding   bool

	// The call in flight: set by the dispatcher before it starts the call
	// (op) and by the call's goroutine (the rest), which owns the agent
	// until it hands it back.
	op         opKind
	code       lease.Code
	start, end time.Duration // run offsets
	// The server's hints: a denial's time left on the current lease, an
	// overload's retry-after (0: none given).
	expiresIn, retryAfter time.Duration
}

// harness is what the agents of one target run share.
type harness struct {
	cfg      runConfig
	rec      *recorder
	sessions []Session
	opCtx    context.Context // parent of every call's context; cancelled only on abort
	base     int32           // agents [0, base) are the claimants; the rest burst claimants
}

// session is the connection agent id uses.
func (h *harness) session(id int32) Session { return h.sessions[int(id)%len(h.sessions)] }

// keyName is the lease key of key index k.
func keyName(k int32) string { return fmt.Sprintf("application-leadership/bench/app-%06d", k) }

// holderName is agent id's holder name: unit-KEY-N for the claimants,
// burst-KEY-N for the burst scenario's extra claimants (ids are handed out
// key by key, claimants then burst claimants).
func (h *harness) holderName(id int32) string {
	if id < h.base {
		c := int32(h.cfg.Claimants)
		return fmt.Sprintf("unit-%06d-%d", id/c, id%c)
	}
	c := int32(h.cfg.BurstClaimants)
	return fmt.Sprintf("burst-%06d-%d", (id-h.base)/c, (id-h.base)%c)
}

// float64 is uniform in [0, 1), as rand.Rand.Float64.
func (a *agent) float64() float64 { return float64(a.pcg.Uint64()>>11) / (1 << 53) }

// int64n is uniform in [0, n) for n > 0 (multiply-shift; the bias, n/2^64,
// is immaterial for jitter).
func (a *agent) int64n(n int64) int64 {
	hi, _ := bits.Mul64(a.pcg.Uint64(), uint64(n))
	return int64(hi)
}

// jitter returns d scaled by a uniform factor in [1-f, 1+f].
func (a *agent) jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*a.float64()))
}

// backoff is full-jitter exponential backoff from 50 ms, capped at half the
// renew interval (and 5 s).
func (a *agent) backoff(cfg *runConfig, attempt int32) time.Duration {
	ceiling := min(cfg.RenewEvery/2, 5*time.Second)
	d := min(50*time.Millisecond<<min(attempt, 16), ceiling)
	return time.Duration(a.int64n(int64(d) + 1))
}

// retryWait is how long to wait after a failed call: the server's
// retry-after when it gave one, else backoff.
func (a *agent) retryWait(cfg *runConfig) time.Duration {
	if a.code == lease.CodeOverloaded && a.retryAfter > 0 {
		return a.retryAfter + a.backoff(cfg, 0)
	}
	return a.backoff(cfg, a.attempt)
}

// nextOp is the call the agent makes when its time comes.
func (a *agent) nextOp(cfg *runConfig) opKind {
	switch {
	case !a.holding:
		return opClaim
	case a.float64() < cfg.RevokeChance:
		return opRevoke
	}
	return opExtend
}

// answered updates the agent after its call came back and returns when it
// makes its next one (a run offset).
func (a *agent) answered(cfg *runConfig) time.Duration {
	now := a.end
	if a.op == opClaim {
		switch a.code {
		case lease.CodeOK:
			a.holding, a.attempt = true, 0
			a.safeUntil = a.start + cfg.LeaseDuration
			return a.start + a.jitter(cfg.RenewEvery, 0.1)
		case lease.CodeDenied:
			// Wait until the holder's lease would run out (when the server
			// says), else about one renew interval.
			a.attempt = 0
			if a.expiresIn > 0 {
				return now + a.expiresIn + time.Duration(a.int64n(int64(cfg.RenewEvery/10)+1))
			}
			return now + a.jitter(cfg.RenewEvery, 0.25)
		}
		wait := a.retryWait(cfg)
		a.attempt++
		return now + wait
	}
	switch {
	case a.op == opRevoke:
		// Gave up leadership (if the call failed, the lease may be gone
		// anyway, or runs out); come back later.
		a.holding, a.attempt = false, 0
		return now + a.jitter(cfg.RenewEvery, 0.5)
	case a.code == lease.CodeOK:
		a.attempt = 0
		a.safeUntil = a.start + cfg.LeaseDuration
		return a.start + a.jitter(cfg.RenewEvery, 0.1)
	case a.code == lease.CodeNotHeld || a.code == lease.CodeDenied:
		a.holding, a.attempt = false, 0 // lost it: claim again at once
		return now
	}
	wait := a.retryWait(cfg)
	a.attempt++
	if now+wait > a.safeUntil {
		a.holding = false // lapsed: it can no longer count on the lease
	}
	return now + wait
}

// restart is the herd: the agent process restarts and all its local state
// is gone; it claims again at once.
func (a *agent) restart() { a.holding, a.attempt = false, 0 }

// call makes the agent's call (a.op), records it and leaves its result in
// the agent. It reports false when the run was aborted under it (not a
// result, not recorded).
func (h *harness) call(a *agent) bool {
	cfg := &h.cfg
	sess := h.session(a.id)
	key, holder := keyName(a.key), h.holderName(a.id)
	ctx, cancel := context.WithTimeout(h.opCtx, cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	var g Grant
	var err error
	switch a.op {
	case opClaim:
		g, err = sess.Claim(ctx, key, holder, cfg.LeaseDuration)
	case opExtend:
		g, err = sess.Extend(ctx, key, holder, cfg.LeaseDuration)
	case opRevoke:
		err = sess.Revoke(ctx, key, holder)
	}
	end := time.Now()
	a.code = classify(err)
	if a.code == lease.CodeCanceled && h.opCtx.Err() != nil {
		return false // the run was aborted: not a result
	}
	a.start, a.end = h.rec.since(start), h.rec.since(end)
	h.rec.add(Record{
		Key: a.key, Holder: a.id, Op: a.op, Code: a.code,
		Start: a.start, End: a.end,
		Dur: cfg.LeaseDuration, Token: g.Token, Extended: g.Extended,
	})
	// A denial's expiry, where the target needs a call of its own to find
	// it, is looked up after the claim was recorded, with its own deadline.
	if a.code == lease.CodeDenied {
		if f, ok := sess.(denialFiller); ok {
			fctx, cancel := context.WithTimeout(h.opCtx, cfg.OpTimeout)
			f.fillDenial(fctx, err)
			cancel()
		}
	}
	a.expiresIn, a.retryAfter = 0, 0
	var le *lease.Error
	if errors.As(err, &le) {
		a.expiresIn, a.retryAfter = le.ExpiresIn, le.RetryAfter
	}
	return true
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
