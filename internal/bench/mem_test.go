package bench

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// memTarget is an in-memory lease table behind a mutex: a fast target for
// testing the harness itself. With early > 0 it is deliberately broken: a
// lease expires after early*duration, so the analyser must find early
// expiries and dual holders.
type memTarget struct {
	early float64

	mu      sync.Mutex
	leases  map[string]memLease
	index   uint64
	started bool
}

type memLease struct {
	holder string
	token  uint64
	expiry time.Time
}

func init() {
	Register("mem", func() Target { return &memTarget{} })
	Register("mem-broken", func() Target { return &memTarget{early: 0.4} })
}

func (t *memTarget) Name() string {
	if t.early > 0 {
		return "mem-broken"
	}
	return "mem"
}

func (t *memTarget) Start(ctx context.Context, dataDir string) error {
	t.leases, t.started = map[string]memLease{}, true
	return nil
}

func (t *memTarget) NewSession(ctx context.Context) (Session, error) { return memSession{t}, nil }

func (t *memTarget) Stats(ctx context.Context) (Stats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{AppliedIndex: t.index, HasIndex: true, HasQueueDepth: true, HasAppliedAfterDeadline: true}, nil
}

func (t *memTarget) Stop() error { return nil }

func (t *memTarget) expiry(now time.Time, d time.Duration) time.Time {
	if t.early > 0 {
		return now.Add(time.Duration(float64(d) * t.early))
	}
	return now.Add(d)
}

type memSession struct{ t *memTarget }

func (s memSession) write(key, holder string, d time.Duration, claim bool) (Grant, error) {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.index++
	now := time.Now()
	l, ok := t.leases[key]
	if ok && !now.Before(l.expiry) {
		ok = false
	}
	switch {
	case ok && l.holder == holder:
		l.expiry = t.expiry(now, d)
		t.leases[key] = l
		return Grant{Token: l.token, ExpiresIn: l.expiry.Sub(now), Extended: claim}, nil
	case ok:
		if claim {
			return Grant{}, &lease.Error{Code: lease.CodeDenied, Holder: l.holder, ExpiresIn: l.expiry.Sub(now)}
		}
		return Grant{}, lease.ErrNotHeld
	case !claim:
		return Grant{}, lease.ErrNotHeld
	}
	l = memLease{holder: holder, token: t.index, expiry: t.expiry(now, d)}
	t.leases[key] = l
	return Grant{Token: l.token, ExpiresIn: l.expiry.Sub(now)}, nil
}

func (s memSession) Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	return s.write(key, holder, d, true)
}

func (s memSession) Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	return s.write(key, holder, d, false)
}

func (s memSession) Revoke(ctx context.Context, key, holder string) error {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.index++
	if l, ok := t.leases[key]; ok && l.holder == holder {
		delete(t.leases, key)
	}
	return nil
}

func (s memSession) Close() error { return nil }

// memBulkTarget is memTarget with sessions that implement BulkSession; each
// bulk call takes commitLatency, like one log entry's commit.
type memBulkTarget struct{ memTarget }

const commitLatency = 5 * time.Millisecond

func init() { Register("mem-bulk", func() Target { return &memBulkTarget{} }) }

func (t *memBulkTarget) Name() string { return "mem-bulk" }

func (t *memBulkTarget) NewSession(ctx context.Context) (Session, error) {
	return memBulkSession{memSession{&t.memTarget}}, nil
}

type memBulkSession struct{ memSession }

func (s memBulkSession) Bulk(ctx context.Context, ops []BulkOp) ([]BulkResult, error) {
	timer := time.NewTimer(commitLatency)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return nil, &lease.Error{Code: lease.CodeUnknown, Cause: ctx.Err()}
	}
	out := make([]BulkResult, len(ops))
	for i, op := range ops {
		switch op.Op {
		case lease.OpClaim:
			out[i].Grant, out[i].Err = s.write(op.Key, op.Holder, op.Duration, true)
		case lease.OpExtend:
			out[i].Grant, out[i].Err = s.write(op.Key, op.Holder, op.Duration, false)
		case lease.OpRevoke:
			out[i].Err = s.Revoke(ctx, op.Key, op.Holder)
		}
	}
	return out, nil
}
