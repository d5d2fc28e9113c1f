package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/lease"
)

// Workload is the load the suite runs during a fault: concurrent clients
// contending on few keys with short leases, so that grants, denials,
// renewals, revokes, pins and expiries all happen within seconds.
type Workload struct {
	Clients  int           // client goroutines, each with its own client.Client
	Keys     int           // keys contended for
	Ops      int           // per-client op cap
	Duration time.Duration // wall-time cap
	Timeout  time.Duration // per-op context timeout
	// MinLease and MaxLease bound the durations asked for.
	MinLease, MaxLease time.Duration
	// Waiters claim the waiter keys (WaitKey), by claim-on-release streams
	// and unary claims; Watchers watch the suite's namespace. Negative: none.
	Waiters, WaitKeys, Watchers int
	// Releasers call WaitUntilReleased on main and waiter keys.
	Releasers int
	// WaitMinLease and WaitMaxLease bound the waiters' durations (default
	// MinLease and MaxLease).
	WaitMinLease, WaitMaxLease time.Duration
	// WaitTimeout bounds one claim-on-release call.
	WaitTimeout time.Duration
	// BreakEvery is how often every waiter connection is closed.
	BreakEvery time.Duration
}

func (w *Workload) defaults() {
	if w.Clients == 0 {
		w.Clients = 9
	}
	if w.Keys == 0 {
		w.Keys = 4
	}
	if w.Ops == 0 {
		w.Ops = 1 << 30
	}
	if w.Timeout == 0 {
		w.Timeout = 2 * time.Second
	}
	if w.MinLease == 0 {
		w.MinLease = time.Second
	}
	if w.MaxLease == 0 {
		w.MaxLease = 3 * time.Second
	}
	if w.WaitMinLease == 0 {
		w.WaitMinLease = w.MinLease
	}
	if w.WaitMaxLease == 0 {
		w.WaitMaxLease = w.MaxLease
	}
	if w.Waiters == 0 {
		w.Waiters = 4
	}
	if w.WaitKeys == 0 {
		w.WaitKeys = 2
	}
	if w.Watchers == 0 {
		w.Watchers = 2
	}
	if w.Releasers == 0 {
		w.Releasers = 2
	}
	if w.WaitTimeout == 0 {
		w.WaitTimeout = 3 * time.Second
	}
	if w.BreakEvery == 0 {
		w.BreakEvery = 700 * time.Millisecond
	}
	w.Waiters, w.Watchers, w.Releasers = max(w.Waiters, 0), max(w.Watchers, 0), max(w.Releasers, 0)
}

// History is a recorded run: the operations and, for each write, the wall
// time its context expired (in the recorder's clock), from which the
// checker's bound on the replicated deadline is derived.
type History struct {
	rec   *linearize.Recorder
	start time.Time
	mu    sync.Mutex
	dl    map[int]int64
	// calls[i] = real duration asked for by op i (claim, extend), for the
	// real-time check.
	dur map[int]time.Duration

	tenures tenureLog    // grants clients saw and revokes they called
	watches watchLog     // what each watch delivered
	samples sampler      // replica states read while the load ran
	waits   atomic.Int64 // claim-on-release and waiter claim calls made
	ties    atomic.Int64 // leases granted by a waiter's two-key Bulk claim
}

// now is the real time since the recording began.
func (h *History) now() time.Duration { return time.Since(h.start) }

func newHistory() *History {
	h := &History{start: time.Now(), dl: map[int]int64{}, dur: map[int]time.Duration{}}
	h.rec = linearize.NewRecorderClock(func() int64 { return int64(time.Since(h.start)) })
	return h
}

func (h *History) since(t time.Time) int64 { return int64(t.Sub(h.start)) }

// Key is the i-th key of the suite.
func Key(i int) lease.Key {
	return lease.Key{Namespace: "faults", Group: "g", Name: fmt.Sprint("k", i)}
}

// Run drives w against endpoints until ctx is done, the duration passes or
// every client made w.Ops calls. cl.New builds client i (endpoints
// rotated so clients start on different servers).
func (w Workload) Run(ctx context.Context, h *History, cl Clients) error {
	w.defaults()
	ctx, cancel := context.WithTimeout(ctx, w.Duration)
	defer cancel()
	var wg sync.WaitGroup
	var waitErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if waitErr = w.runWaiters(ctx, h, cl); waitErr != nil {
			cancel()
		}
	}()
	for i := 0; i < w.Clients; i++ {
		c, err := cl.New(i)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			w.client(ctx, h, i, c)
		}()
	}
	wg.Wait()
	return waitErr
}

func (w *Workload) client(ctx context.Context, h *History, id int, c *client.Client) {
	rnd := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	holder := fmt.Sprint("h", id)
	entity := fmt.Sprint("p", id%3)
	for n := 0; n < w.Ops && ctx.Err() == nil; n++ {
		key := Key(rnd.IntN(w.Keys))
		d := w.MinLease + time.Duration(rnd.Int64N(int64(w.MaxLease-w.MinLease)+1))
		d = d.Truncate(time.Millisecond) // the wire carries milliseconds
		in := linearize.Input{Key: key, Holder: holder}
		switch r := rnd.IntN(100); {
		case r < 30:
			in.Kind, in.Duration = linearize.KindClaim, d
		case r < 50:
			in.Kind, in.Duration = linearize.KindExtend, d
		case r < 62:
			in.Kind = linearize.KindRevoke
		case r < 66:
			in.Kind, in.Holder = linearize.KindPin, entity
		case r < 73:
			in.Kind, in.Holder = linearize.KindUnpin, entity
		case r < 77:
			in.Kind, in.Holder, in.Stale = linearize.KindGet, "", true
		default:
			in.Kind, in.Holder = linearize.KindGet, ""
		}
		// The op's context is not derived from ctx: stopping the load must
		// not cancel calls in flight (that would only add maybe-applied ops).
		opCtx, opCancel := context.WithTimeout(context.Background(), w.Timeout)
		dl, _ := opCtx.Deadline()
		call := h.now() // at or before the recorded call
		if in.Kind == linearize.KindRevoke {
			h.tenures.revoke(in.Key, in.Holder, call)
		}
		id := h.rec.Invoke(id, in)
		if in.Kind.IsWrite() {
			h.mu.Lock()
			h.dl[id] = h.since(dl)
			h.dur[id] = in.Duration
			h.mu.Unlock()
		}
		w.do(opCtx, h, id, c, in, call)
		opCancel()
	}
}

func (w *Workload) do(ctx context.Context, h *History, id int, c *client.Client, in linearize.Input, call time.Duration) {
	var res client.Result
	var err error
	switch in.Kind {
	case linearize.KindClaim:
		res, err = c.Claim(ctx, in.Key, in.Holder, in.Duration)
	case linearize.KindExtend:
		res, err = c.Extend(ctx, in.Key, in.Holder, in.Duration)
	case linearize.KindRevoke:
		res, err = c.Revoke(ctx, in.Key, in.Holder)
	case linearize.KindPin:
		res, err = c.Pin(ctx, in.Key, in.Holder)
	case linearize.KindUnpin:
		res, err = c.Unpin(ctx, in.Key, in.Holder)
	case linearize.KindGet:
		var opts []client.ReadOption
		if in.Stale {
			opts = append(opts, client.Stale())
		}
		l, meta, err := c.Get(ctx, in.Key, opts...)
		if err != nil {
			h.rec.ReturnError(id, err)
			return
		}
		var info lease.Info
		if l != nil {
			info = l.Info
		}
		h.rec.Return(id, linearize.FromInfo(info, l != nil, meta.Now))
		return
	}
	if err != nil {
		h.rec.Return(id, errorOutput(err))
		return
	}
	if res.Outcome == lease.OutcomeGranted || res.Outcome == lease.OutcomeExtended {
		via := ViaClaim
		if in.Kind == linearize.KindExtend {
			via = ViaExtend
		}
		h.tenures.grant(GrantSeen{Op: id, Key: in.Key, Holder: in.Holder, Token: res.Token, Via: via,
			Call: call, Return: h.now(), Remaining: res.Expiry - res.Now, Fresh: res.Outcome == lease.OutcomeGranted, Start: res.Start})
	}
	h.rec.Return(id, linearize.Output{Code: lease.CodeOK, Outcome: res.Outcome, Holder: res.Holder,
		Token: res.Token, Start: res.Start, Expiry: res.Expiry, Now: res.Now})
}

// errorOutput records a failed call. A Denied or NotHeld answer states the
// holder's lease and the replicated time it was applied at, so it is
// checked like a success; one that does not (Now 0: not made by the state
// machine) had no effect and is left out of the checks.
func errorOutput(err error) linearize.Output {
	out := linearize.FromError(err)
	if out.Code != lease.CodeDenied && out.Code != lease.CodeNotHeld {
		return out
	}
	var le *lease.Error
	if !errors.As(err, &le) || le.Now == 0 {
		out.NoTime = true
		return out
	}
	out.Holder, out.Token, out.Start, out.Expiry, out.Now = le.Holder, le.Token, le.Start, le.Expiry, le.Now
	return out
}
