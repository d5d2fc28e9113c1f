package manager

import (
	"errors"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Lease is a lease this manager holds for a holder, kept by a renewal loop
// until it is revoked, lost or the manager closes.
type Lease struct {
	Key    lease.Key
	Holder string

	m        *Manager
	mu       sync.Mutex
	token    uint64
	duration time.Duration // what renewals ask for
	start    time.Time     // start of the call that set safe
	safe     time.Time     // that call's start + the time it left on the lease
	renew    time.Duration // the server's suggestion from the last answer
	err      error
	lost     chan struct{}
	done     chan struct{} // revoked or released by the caller: stop renewing
	doneOnce sync.Once
}

// Token is the fencing token.
func (l *Lease) Token() uint64 { l.mu.Lock(); defer l.mu.Unlock(); return l.token }

// SafeUntil is the local monotonic instant until which the lease is
// guaranteed held: the start of a successful claim or extend call plus the
// time the server's answer left on the lease (its expiry less the time it
// applied the call: what it applied, which can be less than asked when it
// clamps or truncates a duration, or more when the lease was already
// longer). The latest such instant counts. Act as holder only before it.
func (l *Lease) SafeUntil() time.Time { l.mu.Lock(); defer l.mu.Unlock(); return l.safe }

// Lost is closed when the lease is lost (not held, or a renewal could not
// be confirmed before SafeUntil). Err says why.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err is why the lease was lost (nil while held).
func (l *Lease) Err() error { l.mu.Lock(); defer l.mu.Unlock(); return l.err }

// Held reports whether the lease is still guaranteed at local time now.
func (l *Lease) Held(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil && now.Before(l.safe)
}

// update records a successful claim or extend of l's tenure by a call that
// started at start and asked for requested. The call applied at some instant
// after start, so the lease is held at least until start + (Expiry - Now),
// both replicated times of the answer, exact to the nanosecond (ExpiresIn is
// rounded up, and the requested duration may not be what was applied).
// Keeping the latest such instant is safe because a tenure's expiry never
// moves earlier. Renewals are timed from the latest call, whether or not it
// moved safe.
//
// An answer that left less than was asked means the server applied a
// shorter duration (it clamps extends to a lowered max_duration, and the wire
// carries whole milliseconds): renewals ask for what was applied from then
// on, so they come early enough to keep the lease.
//
// An answer for another tenure (another token) says nothing about this one:
// update refuses it and reports false.
func (l *Lease) update(start time.Time, requested time.Duration, r client.Result) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token != 0 && r.Token != l.token {
		return false
	}
	l.token = r.Token
	applied := max(r.Expiry-r.Now, 0)
	if s := start.Add(applied); s.After(l.safe) {
		l.safe = s
	}
	if !start.Before(l.start) {
		l.start, l.renew = start, r.RenewAfter
	}
	if a := applied.Truncate(time.Millisecond); applied < requested && a > 0 && a < l.duration {
		l.duration = a
	}
	return true
}

type heldKey struct {
	k      lease.Key
	holder string
}

type tokenKey struct {
	k     lease.Key
	token uint64
}

// hold records a successful claim (or extend) made by a call that started
// at start and starts the renewal loop, or refreshes the lease already held.
func (m *Manager) hold(k lease.Key, holder string, d time.Duration, start time.Time, r client.Result) *Lease {
	hk := heldKey{k, holder}
	m.waits.mu.Lock()
	l := m.waits.held[hk]
	if l != nil && l.Err() == nil && l.Token() == r.Token {
		m.waits.mu.Unlock()
		l.mu.Lock()
		l.duration = max(l.duration, d)
		l.mu.Unlock()
		l.update(start, d, r)
		return l
	}
	if l != nil {
		l.release()
		m.forgetLocked(l)
	}
	l = &Lease{Key: k, Holder: holder, m: m, duration: d, lost: make(chan struct{}), done: make(chan struct{})}
	l.update(start, d, r)
	m.waits.held[hk] = l
	m.waits.byToken[tokenKey{k, r.Token}] = l
	m.waits.mu.Unlock()
	m.wg.Add(1)
	go m.renewLoop(l)
	return l
}

// release stops l's renewals without reporting a loss.
func (l *Lease) release() { l.doneOnce.Do(func() { close(l.done) }) }

func (m *Manager) forget(l *Lease) {
	m.waits.mu.Lock()
	m.forgetLocked(l)
	m.waits.mu.Unlock()
}

func (m *Manager) forgetLocked(l *Lease) {
	if m.waits.held[heldKey{l.Key, l.Holder}] == l {
		delete(m.waits.held, heldKey{l.Key, l.Holder})
	}
	if tk := (tokenKey{l.Key, l.Token()}); m.waits.byToken[tk] == l {
		delete(m.waits.byToken, tk)
	}
}

func (m *Manager) lose(l *Lease, err error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = err
	l.mu.Unlock()
	close(l.lost)
	m.forget(l)
	m.st.lost.Add(1)
	if m.cfg.OnLost != nil {
		m.cfg.OnLost(l, err)
	}
}

// nextRenewal is when l should next be renewed.
func (m *Manager) nextRenewal(l *Lease) time.Time {
	l.mu.Lock()
	start, d, renew, safe := l.start, l.duration, l.renew, l.safe
	l.mu.Unlock()
	iv := renew
	if iv <= 0 || iv >= d {
		iv = time.Duration(m.cfg.RenewFraction * float64(d))
	}
	if !m.cfg.Naive {
		// Only ever earlier: a later renewal would eat the retry window.
		iv -= time.Duration(m.cfg.RenewJitter * m.rand() * float64(iv))
	}
	at := start.Add(iv)
	// Whatever the server said, leave at least a tenth of the lease to retry in.
	if latest := safe.Add(-d / 10); at.After(latest) {
		at = latest
	}
	return at
}

func (m *Manager) renewLoop(l *Lease) {
	defer m.wg.Done()
	failures := 0
	now := false // renew at once: a shorter duration is to be tried
	for {
		if !now {
			wait := m.nextRenewal(l).Sub(m.cfg.Clock.Now())
			t := m.cfg.Clock.NewTimer(max(wait, 0))
			select {
			case <-t.C():
			case <-l.done:
				t.Stop()
				return
			case <-m.stop:
				t.Stop()
				return
			}
		}
		now = false
		l.mu.Lock()
		d, safe := l.duration, l.safe
		l.mu.Unlock()
		start := m.cfg.Clock.Now()
		if !start.Before(safe) {
			m.lose(l, lease.Errorf(lease.CodeUnknown, "renewal could not be confirmed before the lease's safe time"))
			return
		}
		// stopBy, not a context deadline: safe is on the manager's clock.
		// After a failure this is a retry: it spends the retry budget.
		res, err := m.attempts(m.ctx, lease.Command{Op: lease.OpExtend, Key: l.Key, Holder: l.Holder, Duration: d}, safe, failures > 0)
		select {
		case <-l.done:
			return // revoked meanwhile: whatever the answer, stop
		case <-m.stop:
			return
		default:
		}
		if err == nil {
			failures = 0
			if !l.update(start, d, res) {
				// The holder holds the key under a newer tenure (claimed
				// again by another path): this tenure has ended.
				m.lose(l, lease.Errorf(lease.CodeNotHeld, "the lease was claimed again under token %d; token %d has ended", res.Token, l.Token()))
				return
			}
			continue
		}
		if shorter, ok := shorterDuration(err, d); ok {
			// A server that refuses rather than clamps a duration above a
			// lowered max_duration still holds the lease: ask for less.
			l.mu.Lock()
			l.duration = min(l.duration, shorter)
			l.mu.Unlock()
			now = true
			continue
		}
		if lease.CodeOf(err) == lease.CodeNotHeld || lease.CodeOf(err) == lease.CodeInvalidArgument {
			m.lose(l, err)
			return
		}
		if !m.cfg.Clock.Now().Before(safe) {
			m.lose(l, err)
			return
		}
		// Transient and still safe: try again after a backoff that never
		// drops below BackoffBase (an empty retry budget answers at once,
		// and must not turn this into a hot loop) nor below the server's
		// retry-after, until safe passes.
		failures++
		pause := max(m.cfg.BackoffBase, client.FullJitter(m.cfg.BackoffBase, m.cfg.BackoffMax, failures, m.rand()))
		if e := (*lease.Error)(nil); errors.As(err, &e) {
			pause = max(pause, e.RetryAfter)
		}
		if err := m.sleep(m.ctx, pause); err != nil {
			return
		}
	}
}

// shorterDuration is the duration to retry an extend of d with after err:
// half of d when err refuses the duration itself, while that half is still
// a valid lease duration in every cluster (at least the default minimum).
// Halving finds any lowered maximum in a few calls, once per lease.
func shorterDuration(err error, d time.Duration) (time.Duration, bool) {
	var e *lease.Error
	if !errors.As(err, &e) || e.Code != lease.CodeInvalidArgument || e.Field != "duration" {
		return 0, false
	}
	half := (d / 2).Truncate(time.Millisecond)
	return half, half >= lease.DefaultLimits.MinDuration
}
