package manager

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Handle is the manager's API for one (namespace, group).
type Handle struct {
	m         *Manager
	namespace string
	group     string
}

// Handle returns the handle of namespace/group.
func (m *Manager) Handle(namespace, group string) *Handle {
	return &Handle{m: m, namespace: namespace, group: group}
}

func (h *Handle) key(name string) lease.Key {
	return lease.Key{Namespace: h.namespace, Group: h.group, Name: name}
}

// Claim claims name for holder for d: granted if absent, extended if holder
// holds it, lease.ErrDenied (with Holder, ExpiresIn) if another holder does.
// On success the lease is renewed until Revoke, loss or Close.
func (h *Handle) Claim(ctx context.Context, name, holder string, d time.Duration) (*Lease, error) {
	k := h.key(name)
	if err := h.m.deniedLocally(k, holder); err != nil {
		return nil, err
	}
	start := h.m.cfg.Clock.Now()
	res, err := h.m.do(ctx, lease.Command{Op: lease.OpClaim, Key: k, Holder: holder, Duration: d}, time.Time{})
	if err != nil {
		h.m.noteDenied(k, start, err)
		return nil, err
	}
	return h.m.hold(k, holder, d, start, res), nil
}

// ClaimOnRelease claims name for holder, waiting its turn: the claim is
// queued in the state machine and granted, in arrival order, when the lease
// is released. It returns when holder holds the lease, or an error (ctx's
// end withdraws the queued claim).
func (h *Handle) ClaimOnRelease(ctx context.Context, name, holder string, d time.Duration) (*Lease, error) {
	return h.m.claimOnRelease(ctx, h.key(name), holder, d)
}

// Revoke stops renewing holder's lease on name and releases it.
// lease.ErrNotHeld if another holder has it; nil if absent.
func (h *Handle) Revoke(ctx context.Context, name, holder string) error {
	k := h.key(name)
	h.m.waits.mu.Lock()
	l := h.m.waits.held[heldKey{k, holder}]
	h.m.waits.mu.Unlock()
	if l != nil {
		l.release()
		h.m.forget(l)
	}
	_, err := h.m.do(ctx, lease.Command{Op: lease.OpRevoke, Key: k, Holder: holder}, time.Time{})
	return err
}

// Check reports whether token is still the fencing token of name's current
// holder: nil if so, lease.ErrNotHeld otherwise. A lease this manager holds
// and can vouch for is answered locally; anything else is read from the
// leader.
func (h *Handle) Check(ctx context.Context, name string, token uint64) error {
	k := h.key(name)
	now := h.m.cfg.Clock.Now()
	h.m.waits.mu.Lock()
	l := h.m.waits.byToken[tokenKey{k, token}]
	h.m.waits.mu.Unlock()
	if l != nil && l.Held(now) {
		return nil
	}
	info, err := h.m.get(ctx, k)
	if err != nil {
		return err
	}
	if info == nil || info.Token != token {
		return lease.Errorf(lease.CodeNotHeld, "token %d is not the current holder's", token)
	}
	return nil
}

// WaitUntilReleased returns once name is not held (at once if absent).
func (h *Handle) WaitUntilReleased(ctx context.Context, name string) error {
	return h.m.waitReleased(ctx, h.key(name))
}

// Pin stops name from expiring until entity unpins it (admin role).
func (h *Handle) Pin(ctx context.Context, name, entity string) error {
	_, err := h.m.do(ctx, lease.Command{Op: lease.OpPin, Key: h.key(name), Holder: entity}, time.Time{})
	return err
}

// Unpin removes entity's pin on name.
func (h *Handle) Unpin(ctx context.Context, name, entity string) error {
	_, err := h.m.do(ctx, lease.Command{Op: lease.OpUnpin, Key: h.key(name), Holder: entity}, time.Time{})
	return err
}

// Leases reads the group's leases from the leader.
func (h *Handle) Leases(ctx context.Context) ([]lease.Info, error) {
	cctx, cancel := context.WithTimeout(ctx, h.m.cfg.CallTimeout)
	defer cancel()
	ls, err := h.m.cfg.Transport.List(cctx, h.namespace, h.group)
	if err != nil {
		_, e := classify(err)
		return nil, e
	}
	return ls, nil
}
