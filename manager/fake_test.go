package manager

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/clock/clocktest"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// eventually waits (in real time, bounded) for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeTransport is a one-replica cluster: an fsm.Machine whose replicated
// time is the fake clock's elapsed time.
type fakeTransport struct {
	clock *clocktest.Fake
	epoch time.Time

	mu      sync.Mutex
	m       *fsm.Machine
	index   uint64
	calls   int
	ops     int
	streams map[*fakeStream]struct{}
	// fail, if set, is asked before every bulk call; a non-nil error fails
	// the whole call. block, if set, is waited on (with the call's ctx).
	fail  func(call int, cmds []lease.Command) error
	block func(cmds []lease.Command) chan struct{}
	// op, if set, is asked (under mu) about every op of a bulk call before
	// it applies: it may rewrite the op (a server clamping a duration), and
	// a non-nil error is that op's answer instead (not applied).
	op func(c *lease.Command) error
}

func newFakeTransport(c *clocktest.Fake) *fakeTransport {
	m := fsm.New()
	m.RecordEvents(true)
	return &fakeTransport{clock: c, epoch: c.Now(), m: m, streams: map[*fakeStream]struct{}{}}
}

func (f *fakeTransport) now() time.Duration { return f.clock.Now().Sub(f.epoch) }

// apply applies cmds directly (as another client would) and publishes events.
func (f *fakeTransport) apply(cmds ...lease.Command) []lease.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(cmds)
}

func (f *fakeTransport) applyLocked(cmds []lease.Command) []lease.Result {
	now := f.now()
	for i := range cmds {
		if cmds[i].Deadline == 0 {
			cmds[i].Deadline = now + time.Minute
		}
	}
	f.index++
	res := f.m.Apply(f.index, &logentry.Entry{Kind: logentry.KindBatch, Time: now, Commands: cmds})
	if evs := f.m.TakeEvents(); len(evs) > 0 {
		for s := range f.streams {
			s.ch <- evs
		}
	}
	return res
}

func (f *fakeTransport) tick() { f.apply() }

func (f *fakeTransport) counts() (calls, ops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.ops
}

func (f *fakeTransport) Bulk(ctx context.Context, cmds []lease.Command) ([]client.BulkResult, error) {
	f.mu.Lock()
	f.calls++
	f.ops += len(cmds)
	call, fail, block := f.calls, f.fail, f.block
	f.mu.Unlock()
	if fail != nil {
		if err := fail(call, cmds); err != nil {
			return nil, err
		}
	}
	if block != nil {
		if ch := block(cmds); ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, &lease.Error{Code: lease.CodeUnknown, Message: "call ended", Cause: ctx.Err()}
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]client.BulkResult, len(cmds))
	var apply []lease.Command
	var idx []int
	for i, c := range cmds {
		// Durations travel in whole milliseconds, as on the real wire.
		c.Duration = wire.FromMs(wire.Ms(c.Duration))
		if f.op != nil {
			if err := f.op(&c); err != nil {
				out[i].Err = err
				continue
			}
		}
		apply = append(apply, c)
		idx = append(idx, i)
	}
	res := f.applyLocked(apply)
	for j, i := range idx {
		if err := res[j].Err(); err != nil {
			out[i].Err = err
			continue
		}
		r := res[j]
		out[i].Result = client.Result{Key: cmds[i].Key, Outcome: r.Outcome, Holder: r.Holder, Token: r.Token,
			Start: r.Start, Expiry: r.Expiry, Now: r.Now, Position: r.Position, WaitExpiry: r.WaitExpiry}
		if r.Outcome == lease.OutcomeGranted || r.Outcome == lease.OutcomeExtended {
			// Rounded up to a millisecond, as on the real wire.
			out[i].Result.ExpiresIn = (r.Expiry - r.Now + time.Millisecond - 1).Truncate(time.Millisecond)
		}
	}
	return out, nil
}

func (f *fakeTransport) Get(ctx context.Context, k lease.Key) (*lease.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.m.Get(k, f.now())
	if !ok {
		return nil, nil
	}
	return &info, nil
}

func (f *fakeTransport) List(ctx context.Context, ns, group string) ([]lease.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.List(ns, group, lease.Key{}, 0, f.now()), nil
}

type fakeStream struct {
	f    *fakeTransport
	ns   string
	ch   chan []lease.Event
	done chan struct{}
	once sync.Once
}

func (f *fakeTransport) Watch(ctx context.Context, ns string) (EventStream, error) {
	s := &fakeStream{f: f, ns: ns, ch: make(chan []lease.Event, 1024), done: make(chan struct{})}
	f.mu.Lock()
	f.streams[s] = struct{}{}
	f.mu.Unlock()
	return s, nil
}

func (s *fakeStream) Next() ([]lease.Event, error) {
	for {
		select {
		case evs := <-s.ch:
			var out []lease.Event
			for _, e := range evs {
				if e.Key.Namespace == s.ns {
					out = append(out, e)
				}
			}
			if len(out) > 0 {
				return out, nil
			}
		case <-s.done:
			return nil, lease.Errorf(lease.CodeCanceled, "watch closed")
		}
	}
}

func (s *fakeStream) Close() {
	s.once.Do(func() {
		s.f.mu.Lock()
		delete(s.f.streams, s)
		s.f.mu.Unlock()
		close(s.done)
	})
}
