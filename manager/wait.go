package manager

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// waitState is everything fed by the watch streams (one per namespace).
type waitState struct {
	mu       sync.Mutex
	closed   bool
	held     map[heldKey]*Lease
	byToken  map[tokenKey]*Lease // the same leases, for Check
	released map[lease.Key]map[chan struct{}]struct{}
	grants   map[heldKey]chan lease.Event
	denied   map[lease.Key]denial
	watches  map[string]*nsWatch
}

type denial struct {
	holder string
	until  time.Time
}

// nsWatch is one namespace's watch. reset is closed (and replaced) whenever
// the stream had to be reopened, so waiters re-read what they may have missed.
type nsWatch struct {
	ready   chan struct{} // closed once the first stream is open (or failed: err)
	err     error
	healthy bool
	reset   chan struct{}
}

func (w *waitState) init() {
	w.held = make(map[heldKey]*Lease)
	w.byToken = make(map[tokenKey]*Lease)
	w.released = make(map[lease.Key]map[chan struct{}]struct{})
	w.grants = make(map[heldKey]chan lease.Event)
	w.denied = make(map[lease.Key]denial)
	w.watches = make(map[string]*nsWatch)
}

func (w *waitState) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, l := range w.held {
		l.release()
	}
}

// watch returns ns's watch, starting it on first use and waiting until it
// is registered (every event after watch returns will be seen).
func (m *Manager) watch(ctx context.Context, ns string) (*nsWatch, error) {
	m.waits.mu.Lock()
	if m.waits.closed {
		m.waits.mu.Unlock()
		return nil, errClosed
	}
	nw := m.waits.watches[ns]
	if nw == nil {
		nw = &nsWatch{ready: make(chan struct{}), reset: make(chan struct{})}
		m.waits.watches[ns] = nw
		m.wg.Add(1)
		go m.watchLoop(ns, nw)
	}
	m.waits.mu.Unlock()
	select {
	case <-nw.ready:
		return nw, nw.err
	case <-ctx.Done():
		return nil, &lease.Error{Code: lease.CodeCanceled, Message: "canceled by the caller", Cause: ctx.Err()}
	}
}

func (m *Manager) watchLoop(ns string, nw *nsWatch) {
	defer m.wg.Done()
	first := true
	failures := 0
	for {
		s, err := m.cfg.Transport.Watch(m.ctx, ns)
		if err == nil {
			failures = 0
			m.waits.mu.Lock()
			nw.healthy = true
			if first {
				close(nw.ready)
				first = false
			} else {
				close(nw.reset)
				nw.reset = make(chan struct{})
			}
			m.waits.mu.Unlock()
			err = m.pump(s)
			s.Close()
			m.waits.mu.Lock()
			nw.healthy = false
			// Events may be missed until the reopen: forget the denials
			// that only a release event would have cleared.
			clear(m.waits.denied)
			m.waits.mu.Unlock()
		}
		if m.ctx.Err() != nil || isStopped(m.stop) {
			if first {
				nw.err = errClosed
				close(nw.ready)
			}
			return
		}
		failures++
		if first && failures >= m.cfg.MaxAttempts {
			nw.err = err
			close(nw.ready)
			first = false
			m.waits.mu.Lock()
			delete(m.waits.watches, ns) // the next waiter tries again
			m.waits.mu.Unlock()
			return
		}
		if m.sleep(m.ctx, client.FullJitter(m.cfg.BackoffBase, m.cfg.BackoffMax, failures, m.rand())) != nil {
			if first {
				nw.err = errClosed
				close(nw.ready)
			}
			return
		}
	}
}

func isStopped(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// pump delivers events until the stream fails or the manager stops.
func (m *Manager) pump(s EventStream) error {
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-m.stop:
			s.Close()
		case <-stopped:
		}
	}()
	for {
		evs, err := s.Next()
		if err != nil {
			return err
		}
		m.waits.mu.Lock()
		for _, e := range evs {
			switch e.Kind {
			case lease.EventRevoked, lease.EventExpired:
				delete(m.waits.denied, e.Key)
				for ch := range m.waits.released[e.Key] {
					close(ch)
				}
				delete(m.waits.released, e.Key)
			case lease.EventClaimed:
				if ch := m.waits.grants[heldKey{e.Key, e.Holder}]; ch != nil {
					select {
					case ch <- e:
					default:
					}
				}
			}
		}
		m.waits.mu.Unlock()
	}
}

// deniedLocally answers a claim from a recent denial while the watch that
// would clear it is healthy.
func (m *Manager) deniedLocally(k lease.Key, holder string) error {
	m.waits.mu.Lock()
	defer m.waits.mu.Unlock()
	d, ok := m.waits.denied[k]
	nw := m.waits.watches[k.Namespace]
	if !ok || nw == nil || !nw.healthy || d.holder == holder {
		return nil
	}
	left := d.until.Sub(m.cfg.Clock.Now())
	if left <= 0 {
		delete(m.waits.denied, k)
		return nil
	}
	m.st.localDenied.Add(1)
	return &lease.Error{Code: lease.CodeDenied, Holder: d.holder, ExpiresIn: left, Message: "lease held by another holder (recent denial)"}
}

func (m *Manager) noteDenied(k lease.Key, start time.Time, err error) {
	e, ok := err.(*lease.Error)
	if !ok || e.Code != lease.CodeDenied || e.Holder == "" || e.ExpiresIn <= 0 {
		return
	}
	m.waits.mu.Lock()
	if nw := m.waits.watches[k.Namespace]; nw != nil && nw.healthy {
		m.waits.denied[k] = denial{holder: e.Holder, until: start.Add(e.ExpiresIn)}
	}
	m.waits.mu.Unlock()
}

// waitReleased returns when k is not held.
func (m *Manager) waitReleased(ctx context.Context, k lease.Key) error {
	nw, err := m.watch(ctx, k.Namespace)
	if err != nil {
		return err
	}
	for {
		ch := make(chan struct{})
		m.waits.mu.Lock()
		if m.waits.released[k] == nil {
			m.waits.released[k] = make(map[chan struct{}]struct{})
		}
		m.waits.released[k][ch] = struct{}{}
		reset := nw.reset
		m.waits.mu.Unlock()
		unregister := func() {
			m.waits.mu.Lock()
			delete(m.waits.released[k], ch)
			if len(m.waits.released[k]) == 0 {
				delete(m.waits.released, k)
			}
			m.waits.mu.Unlock()
		}
		info, err := m.get(ctx, k)
		if err != nil {
			unregister()
			return err
		}
		if info == nil {
			unregister()
			return nil
		}
		select {
		case <-ch:
			return nil
		case <-reset:
			unregister() // the stream was reopened: read again
		case <-ctx.Done():
			unregister()
			return &lease.Error{Code: lease.CodeCanceled, Message: "wait canceled", Cause: ctx.Err()}
		case <-m.stop:
			unregister()
			return errClosed
		}
	}
}

// get reads k with the manager's retry rules.
func (m *Manager) get(ctx context.Context, k lease.Key) (*lease.Info, error) {
	m.cfg.Budget.Call()
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		info, err := m.cfg.Transport.Get(cctx, k)
		cancel()
		if err == nil {
			return info, nil
		}
		cl, e := classify(err)
		if cl == final || attempt >= m.cfg.MaxAttempts || (!m.cfg.Naive && !m.cfg.Budget.Take()) {
			return nil, e
		}
		if err := m.sleep(ctx, max(e.RetryAfter, m.retryDelay(attempt))); err != nil {
			return nil, err
		}
	}
}

// claimOnRelease queues a claim and returns once it is granted.
func (m *Manager) claimOnRelease(ctx context.Context, k lease.Key, holder string, d time.Duration) (*Lease, error) {
	nw, err := m.watch(ctx, k.Namespace)
	if err != nil {
		return nil, err
	}
	hk := heldKey{k, holder}
	g := make(chan lease.Event, 1)
	m.waits.mu.Lock()
	m.waits.grants[hk] = g
	m.waits.mu.Unlock()
	defer func() {
		m.waits.mu.Lock()
		if m.waits.grants[hk] == g {
			delete(m.waits.grants, hk)
		}
		m.waits.mu.Unlock()
	}()
	cmd := lease.Command{Op: lease.OpQueueClaim, Key: k, Holder: holder, Duration: d, Wait: m.cfg.QueueWait}
	for {
		// Taken before the queue write: a watch reopened after it may have
		// missed the grant (a compacted or broken stream).
		m.waits.mu.Lock()
		reset := nw.reset
		m.waits.mu.Unlock()
		start := m.cfg.Clock.Now()
		res, err := m.do(ctx, cmd, time.Time{})
		if err != nil {
			if ctx.Err() != nil {
				m.cancelQueued(k, holder)
			}
			return nil, err
		}
		if res.Outcome != lease.OutcomeQueued {
			return m.hold(k, holder, d, start, res), nil
		}
		t := m.cfg.Clock.NewTimer(m.cfg.QueueWait / 2)
		select {
		case <-g:
			t.Stop()
			// Granted by a release. The grant's instant is not known on
			// this clock, so the guarantee starts with an extend made now.
			start := m.cfg.Clock.Now()
			res, err := m.do(ctx, lease.Command{Op: lease.OpExtend, Key: k, Holder: holder, Duration: d}, time.Time{})
			if err == nil {
				return m.hold(k, holder, d, start, res), nil
			}
			if lease.CodeOf(err) != lease.CodeNotHeld {
				if ctx.Err() != nil {
					return nil, err
				}
			}
			// Lost again already (or the extend failed): queue again.
		case <-reset:
			t.Stop()
			// The watch was reopened and may have missed the grant: queue
			// again now (it answers "extended" if holder was granted).
		case <-t.C():
			// Refresh the keep-alive; the answer says if it was granted.
		case <-ctx.Done():
			t.Stop()
			m.cancelQueued(k, holder)
			return nil, &lease.Error{Code: lease.CodeCanceled, Message: "claim-on-release canceled", Cause: ctx.Err()}
		case <-m.stop:
			t.Stop()
			return nil, errClosed
		}
	}
}

// cancelQueued withdraws a queued claim in the background (bounded by the
// manager's life; the keep-alive drops it anyway).
func (m *Manager) cancelQueued(k lease.Key, holder string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.CallTimeout)
		defer cancel()
		m.do(ctx, lease.Command{Op: lease.OpCancelQueue, Key: k, Holder: holder}, time.Time{})
	}()
}
