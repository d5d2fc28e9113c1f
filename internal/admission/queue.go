package admission

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/clock"
	"github.com/leasehold/leasehold/lease"
)

// Proposer appends entries to the Raft log. Implemented by the raft node.
type Proposer interface {
	// Propose stamps one entry holding cmds with the leader's clock and appends it to the log.
	// The deadlines in cmds are in replicated time. It must not block for long.
	// Errors are *lease.Error (CodeNotLeader with hint, CodeUnavailable...).
	Propose(cmds []lease.Command) (Future, error)
	// Now returns the leader's replicated clock reading; ok is false when this node is not a ready leader.
	Now() (t time.Duration, ok bool)
}

// Future resolves when the entry has been applied on this node.
type Future interface {
	Done() <-chan struct{}
	// Result returns one result per command, or an error for the whole entry (*lease.Error:
	// CodeNotLeader / CodeUnknown when leadership was lost after proposing).
	Result() ([]lease.Result, error)
}

// notifier is a Future that can call back when it resolves (the raft
// node's proposals do, from the goroutine that applies the entry). The
// queue then answers the entry's callers on that goroutine instead of
// waking one of its own in between. Notify must keep fn and return true,
// or, when the future has already resolved, return false and drop fn.
type notifier interface {
	Notify(fn interface{ Resolved() }) bool
}

// Clock is the runner's time source (the one clock every component
// injects). The runner keeps one timer, for the earliest deadline of the
// queued ops, to answer their callers at it; it never dispatches on a
// timer.
type Clock = clock.Clock

// ErrMayHaveApplied is the Cause (with the context's error) of the
// CodeCanceled error a caller gets when it leaves after its ops were
// proposed: they may still apply. A CodeCanceled or CodeDeadlineExceeded
// error without it means nothing was proposed.
var ErrMayHaveApplied = lease.ErrMayHaveApplied

// Option configures a Queue.
type Option func(*Queue)

// WithClock injects the clock (default the system clock).
func WithClock(c Clock) Option { return func(q *Queue) { q.clock = c } }

// WithHooks installs metric callbacks.
func WithHooks(h Hooks) Option { return func(q *Queue) { q.hooks = h } }

// Queue is the admission queue's runner: it admits calls into a Core, keeps
// up to MaxInFlight entries proposed, and hands results back to callers.
// One dispatcher goroutine proposes (so entries reach the log in the order
// they were built and a call split across entries stays in order). An
// in-flight entry is answered from its future's callback when the future
// offers one (notifier), otherwise by a goroutine that waits for it.
type Queue struct {
	prop  Proposer
	clock Clock
	hooks Hooks

	mu       sync.Mutex
	core     *Core
	inFlight int
	closed   bool
	// flights holds the in-flight entries answered by callback, so Close
	// can answer them (Raft may never resolve a future at shutdown).
	flights map[*flight]struct{}

	// nextExpiry is the earliest moment a queued op is due to be dropped,
	// or zero; it may be earlier than the truth (the op left the queue
	// since), never later. The dispatcher keeps its one timer at it.
	// expiryStale asks the dispatcher to recompute it (the margin changed).
	nextExpiry  time.Time
	expiryStale bool

	kick chan struct{} // capacity 1: "there may be work"; never blocks a sender
	quit chan struct{}
	wg   sync.WaitGroup
}

// New starts a Queue in front of p. Close it to stop its goroutines.
func New(p Proposer, s Settings, opts ...Option) (*Queue, error) {
	core, err := NewCore(s)
	if err != nil {
		return nil, err
	}
	q := &Queue{prop: p, clock: clock.Real{}, core: core,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), flights: make(map[*flight]struct{})}
	for _, o := range opts {
		o(q)
	}
	q.wg.Add(1)
	go q.dispatcher()
	return q, nil
}

// SetSettings swaps the settings atomically; they apply from the next
// admission and the next entry.
func (q *Queue) SetSettings(s Settings) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.core.SetSettings(s); err != nil {
		return err
	}
	q.expiryStale = true // the deadline margin may have changed
	q.signal()           // MaxInFlight may have grown
	return nil
}

// Settings returns the current settings.
func (q *Queue) Settings() Settings {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.core.Settings()
}

// Stats returns a snapshot.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.core.Stats()
	s.InFlight = q.inFlight
	return s
}

// Close fails queued calls with CodeUnavailable and in-flight ones with
// CodeUnknown, and waits for the queue's goroutines to exit.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	e := lease.Errorf(lease.CodeUnavailable, "admission queue closed; not applied")
	for _, it := range q.core.DrainAll() {
		it.req.resolve(it.idx, lease.Result{}, e)
	}
	flights := make([]*flight, 0, len(q.flights))
	for fl := range q.flights {
		flights = append(flights, fl)
	}
	q.mu.Unlock()
	for _, fl := range flights {
		q.finish(fl, nil, errClosedInFlight)
	}
	close(q.quit)
	q.wg.Wait()
}

// Submit proposes cmds (their Deadline fields are ignored and overwritten)
// and waits until they are applied, rejected, or ctx ends. It returns one
// result per command, in order, or one *lease.Error for all of them:
// CodeOverloaded (RetryAfter set), CodeDeadlineExceeded or CodeCanceled
// (neither proposed: not applied), CodeCanceled wrapping ErrMayHaveApplied
// (ctx ended after proposal), or the Proposer's error (CodeNotLeader...).
// When only some commands fail that way, their results carry the code.
// All cmds travel in one entry when they fit in one.
func (q *Queue) Submit(ctx context.Context, cmds []lease.Command) ([]lease.Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, lease.ContextError(err, false)
	}
	req := newRequest(cmds)
	if dl, ok := ctx.Deadline(); ok {
		for i := range req.items {
			req.items[i].Deadline = dl
		}
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, lease.Errorf(lease.CodeUnavailable, "admission queue closed; not applied")
	}
	now := q.clock.Now()
	if errs := q.core.Admit(now, req.ptrs...); errs != nil {
		for i, e := range errs {
			if e != nil {
				q.reject(req.ptrs[i], reasonOf(e))
				req.resolve(i, lease.Result{}, e)
			}
		}
	}
	if !req.answered {
		for _, it := range req.ptrs {
			if at := q.core.ExpiresAt(it); it.state == stateQueued && !at.IsZero() &&
				(q.nextExpiry.IsZero() || at.Before(q.nextExpiry)) {
				q.nextExpiry = at // the dispatcher, signalled below, moves its timer
			}
		}
		q.depthChanged()
		q.signal()
	}
	q.mu.Unlock()
	return q.wait(ctx, req)
}

func reasonOf(e *lease.Error) Reason {
	switch {
	case e.Code == lease.CodeDeadlineExceeded:
		return ReasonDeadline
	case errors.Is(e, errQueueFull):
		return ReasonQueueFull
	default:
		return ReasonOverloaded
	}
}

// wait blocks until req is answered or ctx ends. A queued op whose
// deadline passes is dropped, and its caller answered, by the dispatcher's
// timer (at once rather than when a batch is next built, which could be much
// later if Raft is stuck).
func (q *Queue) wait(ctx context.Context, req *request) ([]lease.Result, error) {
	select {
	case <-req.done:
		return req.res, req.err
	case <-ctx.Done():
		q.cancel(req, ctx.Err())
		<-req.done // cancel answered it unless it was already answered
		return req.res, req.err
	}
}

// cancel withdraws req's queued ops and answers it, unless it was answered.
func (q *Queue) cancel(req *request, cause error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if req.answered {
		return
	}
	proposed, withdrawn := false, 0
	for _, it := range req.ptrs {
		if q.core.Withdraw(it) {
			withdrawn++
			q.reject(it, ReasonCanceled)
		} else if it.state == stateProposed {
			proposed = true
		}
	}
	if withdrawn > 0 {
		q.depthChanged()
	}
	req.answer(nil, lease.ContextError(cause, proposed))
}

func (q *Queue) signal() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// dispatcher proposes entries when kicked, and keeps the queue's one
// expiry timer at nextExpiry: when it fires, the queued ops due by then are
// dropped and answered.
func (q *Queue) dispatcher() {
	defer q.wg.Done()
	var timer clock.Timer
	var timerAt time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var fired <-chan time.Time
		if timer != nil {
			fired = timer.C()
		}
		expire := false
		select {
		case <-q.kick:
		case <-fired:
			timer, timerAt, expire = nil, time.Time{}, true
		case <-q.quit:
			return
		}
		q.dispatch()
		q.mu.Lock()
		now := q.clock.Now()
		if expire || q.expiryStale {
			dropped, next := q.core.ExpireQueued(now)
			q.answerDropped(dropped)
			q.nextExpiry, q.expiryStale = next, false
		}
		want := q.nextExpiry
		q.mu.Unlock()
		if !want.Equal(timerAt) {
			if timer != nil {
				timer.Stop()
				timer = nil
			}
			if !want.IsZero() {
				timer, timerAt = q.clock.NewTimer(want.Sub(now)), want
			} else {
				timerAt = time.Time{}
			}
		}
	}
}

var errDropped = &lease.Error{Code: lease.CodeDeadlineExceeded, Message: "deadline passed while queued; not applied"}

func (q *Queue) answerDropped(dropped []*Item) {
	for _, it := range dropped {
		q.reject(it, ReasonDeadline)
		it.req.resolve(it.idx, lease.Result{}, errDropped)
	}
	if len(dropped) > 0 {
		q.depthChanged()
	}
}

// dispatch proposes entries while there is queued work and a free slot.
// Only the dispatcher goroutine calls it, so entries are proposed in the
// order they are built.
func (q *Queue) dispatch() {
	for {
		rep, leader := q.prop.Now()
		q.mu.Lock()
		if q.closed || !q.core.Ready(q.inFlight) {
			q.mu.Unlock()
			return
		}
		now := q.clock.Now()
		b := q.core.NextBatch(now)
		q.answerDropped(b.Dropped)
		if len(b.Items) == 0 {
			q.mu.Unlock()
			continue
		}
		q.inFlight++
		margin := q.core.s.DeadlineMargin
		q.depthChanged()
		for _, it := range b.Items {
			if q.hooks.Wait != nil {
				q.hooks.Wait(it.lane, now.Sub(it.Enqueued))
			}
		}
		if q.hooks.Entry != nil {
			q.hooks.Entry(len(b.Items), b.Bytes)
		}
		q.mu.Unlock()

		fl := &flight{q: q, items: b.Items, proposed: now}
		if !leader {
			q.finish(fl, nil, lease.Errorf(lease.CodeNotLeader, "not a ready leader"))
			continue
		}
		cmds := make([]lease.Command, len(b.Items))
		for i, it := range b.Items {
			cmds[i] = it.Cmd
			// The state machine refuses an op applied past this, in replicated time.
			cmds[i].Deadline = rep + it.Deadline.Sub(now) - margin
		}
		f, err := q.prop.Propose(cmds)
		if err != nil {
			q.finish(fl, nil, err)
			continue
		}
		fl.f = f
		select {
		case <-f.Done(): // already applied (a fast or fake proposer): no goroutine needed
			q.land(fl)
			continue
		default:
		}
		if nf, ok := f.(notifier); ok {
			q.mu.Lock()
			closed := q.closed
			if !closed {
				q.flights[fl] = struct{}{}
			}
			q.mu.Unlock()
			if closed {
				q.finish(fl, nil, errClosedInFlight)
			} else if !nf.Notify(fl) {
				q.land(fl)
			}
			continue
		}
		q.wg.Add(1)
		go q.await(fl)
	}
}

// flight is one proposed entry awaiting its outcome.
type flight struct {
	q        *Queue
	items    []*Item
	proposed time.Time
	f        Future
	// finished (under Queue.mu) makes answering idempotent: a callback and
	// Close may both try.
	finished bool
}

var errClosedInFlight = &lease.Error{Code: lease.CodeUnknown, Message: "admission queue closed with the entry in flight"}

// Resolved is the future's callback (notifier).
func (fl *flight) Resolved() { fl.q.land(fl) }

// land answers fl from its resolved future.
func (q *Queue) land(fl *flight) {
	res, err := results(fl.f, len(fl.items))
	q.finish(fl, res, err)
}

func results(f Future, n int) ([]lease.Result, error) {
	res, err := f.Result()
	if err == nil && len(res) != n {
		err = lease.Errorf(lease.CodeUnknown, "proposer returned %d results for %d commands", len(res), n)
	}
	return res, err
}

// await hands an in-flight entry's results to its callers, for a future
// that cannot call back.
func (q *Queue) await(fl *flight) {
	defer q.wg.Done()
	select {
	case <-fl.f.Done():
		q.land(fl)
	case <-q.quit:
		q.finish(fl, nil, errClosedInFlight)
	}
}

// finish frees an in-flight slot and answers the entry's ops, once.
func (q *Queue) finish(fl *flight, res []lease.Result, err error) {
	var le *lease.Error
	if err != nil && !errors.As(err, &le) {
		le = &lease.Error{Code: lease.CodeUnknown, Cause: err}
	}
	items, proposed := fl.items, fl.proposed
	q.mu.Lock()
	if fl.finished {
		q.mu.Unlock()
		return
	}
	fl.finished = true
	delete(q.flights, fl)
	q.inFlight--
	now := q.clock.Now()
	if err == nil {
		q.core.Completed(now.Sub(proposed))
	}
	if q.hooks.Committed != nil {
		q.hooks.Committed(len(items), now.Sub(proposed), err)
	}
	for i, it := range items {
		if le != nil {
			it.req.resolve(it.idx, lease.Result{}, le)
		} else {
			it.req.resolve(it.idx, res[i], nil)
		}
	}
	q.mu.Unlock()
	q.signal()
}

func (q *Queue) reject(it *Item, r Reason) {
	if q.hooks.Rejected != nil {
		q.hooks.Rejected(r, it.lane, 1)
	}
}

func (q *Queue) depthChanged() {
	if q.hooks.Depth != nil {
		q.hooks.Depth(LaneRenewal, q.core.Depth(LaneRenewal))
		q.hooks.Depth(LaneClaim, q.core.Depth(LaneClaim))
	}
}

// request is one Submit call. All its fields are guarded by Queue.mu until
// done is closed; res and err are then read-only.
type request struct {
	items    []Item
	ptrs     []*Item
	results  []lease.Result
	errs     []*lease.Error
	pending  int
	answered bool
	done     chan struct{}
	res      []lease.Result
	err      error

	// Backing arrays for the common single-command call, so it costs two
	// allocations (the request and done) instead of six.
	item1    [1]Item
	ptr1     [1]*Item
	results1 [1]lease.Result
	errs1    [1]*lease.Error
}

func newRequest(cmds []lease.Command) *request {
	r := &request{pending: len(cmds), done: make(chan struct{})}
	if len(cmds) == 1 {
		r.items, r.ptrs, r.results, r.errs = r.item1[:], r.ptr1[:], r.results1[:], r.errs1[:]
	} else {
		r.items, r.ptrs = make([]Item, len(cmds)), make([]*Item, len(cmds))
		r.results, r.errs = make([]lease.Result, len(cmds)), make([]*lease.Error, len(cmds))
	}
	for i := range cmds {
		r.items[i] = Item{Cmd: cmds[i], req: r, idx: i}
		r.ptrs[i] = &r.items[i]
	}
	return r
}

// nextDeadline is the earliest deadline among req's still-queued ops.
func (r *request) nextDeadline() (t time.Time, ok bool) {
	if r.answered {
		return t, false
	}
	for _, it := range r.ptrs {
		if it.state == stateQueued && (!ok || it.Deadline.Before(t)) {
			t, ok = it.Deadline, true
		}
	}
	return t, ok
}

// resolve records op idx's outcome: a result, or e when it was not applied
// or its entry failed. Outcomes after the answer (a caller that left) are
// discarded.
func (r *request) resolve(idx int, res lease.Result, e *lease.Error) {
	if r.answered {
		return
	}
	r.results[idx], r.errs[idx] = res, e
	if r.pending--; r.pending > 0 {
		return
	}
	// When no op got a result and all failed alike, one error says it all
	// (with the shortest retry-after); otherwise each slot carries its code.
	same := true
	for _, x := range r.errs {
		if x == nil || x.Code != r.errs[0].Code {
			same = false
			break
		}
	}
	if same {
		e := r.errs[0]
		for _, x := range r.errs[1:] {
			if x.RetryAfter < e.RetryAfter {
				e = x
			}
		}
		r.answer(nil, e)
		return
	}
	for i, x := range r.errs {
		if x != nil {
			r.results[i] = lease.Result{Code: x.Code, Message: x.Message, Field: x.Field,
				RetryAfter: x.RetryAfter, LeaderID: x.LeaderID, LeaderAddr: x.LeaderAddr}
		}
	}
	r.answer(r.results, nil)
}

func (r *request) answer(res []lease.Result, err error) {
	r.answered = true
	r.res, r.err = res, err
	close(r.done)
}
