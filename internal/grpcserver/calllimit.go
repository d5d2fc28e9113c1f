package grpcserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/tap"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/lease"
)

// DefaultMaxCalls is Options.MaxCalls's default: about a third of a second
// of unary calls at the leader's ceiling on 2 cores (docs/performance.md),
// well inside the 1-5 s deadlines clients give a write.
const DefaultMaxCalls = 4096

// Bounds of the retry-after a refused call is given.
const (
	minCallRetryAfter = 10 * time.Millisecond
	maxCallRetryAfter = 5 * time.Second
	// The completion rate is measured over callRateWindow to
	// callRateMaxAge; unknownCallRetryAfter stands in until it is.
	callRateWindow        = 100 * time.Millisecond
	callRateMaxAge        = time.Second
	unknownCallRetryAfter = 100 * time.Millisecond
)

// callLimit refuses unary calls beyond a bound on those in progress, in a
// gRPC tap handler: that runs in the connection's reader as the call's
// headers arrive, before a goroutine is started for the call or its message
// is read. The admission queue refuses work it cannot finish by its
// deadline, but only once a call reaches it; on a leader short of CPU, calls
// let in wait for a goroutine, for the decoder and for the queue behind the
// calls ahead of them, and with tens of thousands of callers they ran past
// their deadlines before the queue saw them (the Juju harness at 100× with
// 65,536 calls in flight: 57 % of the calls ended unknown, 0.3 % were
// refused, and the starved leader lost its term 17 times; docs/performance.md,
// section 13). Refusing at the edge keeps the work let in to what can
// finish, and tells the rest when to come back.
type callLimit struct {
	max     int64
	refused func(method string, retryAfter time.Duration) // or nil
	n       atomic.Int64                                  // calls in progress
	done    atomic.Uint64                                 // calls finished, ever
	now     func() time.Time

	mu sync.Mutex // guards the rate sample, taken only when refusing
	at time.Time
	// atDone is done at at; rate is the completions per second measured
	// up to at.
	atDone uint64
	rate   float64
	known  bool
}

func newCallLimit(max int, refused func(string, time.Duration), now func() time.Time) *callLimit {
	if max == 0 {
		max = DefaultMaxCalls
	}
	if max < 0 {
		return nil
	}
	return &callLimit{max: int64(max), refused: refused, now: now}
}

// counted holds the methods whose calls count against the limit: the unary
// Leasehold calls but Status (a health check that must answer under load).
// Admin calls and streams are not counted.
var counted = func() map[string]bool {
	m := make(map[string]bool)
	for _, d := range pb.Leasehold_ServiceDesc.Methods {
		name := "/" + pb.Leasehold_ServiceDesc.ServiceName + "/" + d.MethodName
		m[name] = name != pb.Leasehold_Status_FullMethodName
	}
	return m
}()

// tap is the gRPC InTapHandle. It runs under the connection's lock, so it
// only counts; a call it lets in gives its place back when the call's
// context ends, which gRPC does for every call that got past the tap,
// whether or not its handler ran.
func (l *callLimit) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if !counted[info.FullMethodName] {
		return ctx, nil
	}
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		ra := l.retryAfter()
		if l.refused != nil {
			l.refused(info.FullMethodName, ra)
		}
		return ctx, statusErr(&lease.Error{Code: lease.CodeOverloaded,
			Message: "too many calls in progress on this server", RetryAfter: ra})
	}
	context.AfterFunc(ctx, l.release)
	return ctx, nil
}

func (l *callLimit) release() {
	l.n.Add(-1)
	l.done.Add(1)
}

// retryAfter is how long the calls in progress take to finish at the rate
// calls have been finishing: by then a retry finds room. The rate is
// measured between refusals, over 100 ms to 1 s; before there is such a
// measurement (the first refusals of a burst) it is a guess,
// unknownCallRetryAfter.
func (l *callLimit) retryAfter() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now, done := l.now(), l.done.Load()
	switch el := now.Sub(l.at); {
	case el > callRateMaxAge: // says nothing of now: start a new sample
		l.at, l.atDone, l.rate, l.known = now, done, 0, false
	case el >= callRateWindow:
		l.rate, l.known = float64(done-l.atDone)/el.Seconds(), true
		l.at, l.atDone = now, done
	}
	switch {
	case !l.known:
		return unknownCallRetryAfter
	case l.rate <= 0:
		return maxCallRetryAfter // nothing finished lately: come back late
	}
	d := time.Duration(float64(l.n.Load()) / l.rate * float64(time.Second))
	return min(max(d, minCallRetryAfter), maxCallRetryAfter)
}
