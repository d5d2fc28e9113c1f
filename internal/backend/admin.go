package backend

import (
	"context"
	"errors"
	"math"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/internal/settings"
	"github.com/leasehold/leasehold/lease"
)

var _ grpcserver.AdminBackend = (*Node)(nil)

// applySettings is the raftnode callback for every applied settings entry:
// the admission queue takes the new knobs at once (the fsm already enforces
// the new duration limits, raftnode the tick).
func (n *Node) applySettings(payload []byte) {
	s, err := settings.Unmarshal(payload)
	if err != nil || s.Validate() != nil {
		return // raftnode logs it; every server ignores it alike
	}
	_ = n.queue.SetSettings(s.Admission) // validated above
	n.renew.Store(math.Float64bits(s.RenewFraction))
}

// Settings implements server.AdminBackend: the settings in force and the
// replicated settings version they are at. With no settings entry yet
// (version 0) the limits are the built-in defaults, not this server's flags.
func (n *Node) Settings() (settings.Settings, uint64) {
	p, version := n.r.SettingsState()
	return n.current(p), version
}

func (n *Node) current(payload []byte) settings.Settings {
	base := settings.Default()
	base.TickInterval = n.r.TickInterval()
	base.Admission = n.queue.Settings()
	return settings.Current(payload, base)
}

// SetSettings implements server.AdminBackend. The change is a compare-and-set
// on the replicated settings version: made on top of the settings read at
// version V, it is applied only if the cluster is still at V when the entry
// applies, whichever leader proposes it. basedOn, when given, is the version
// the caller read, and a change based on another version is refused. Without
// it the caller asked for its keys to be set on whatever is current, so a
// change that lost a race is made again on the newer settings.
func (n *Node) SetSettings(ctx context.Context, changes map[string]string, basedOn *uint64) (settings.Settings, uint64, error) {
	for attempt := 0; ; attempt++ {
		next, version, err := n.setSettingsOnce(ctx, changes, basedOn)
		var le *lease.Error
		if basedOn == nil && attempt < 5 && errors.As(err, &le) && le.Field == fsm.StaleSettingsField {
			continue
		}
		return next, version, err
	}
}

func (n *Node) setSettingsOnce(ctx context.Context, changes map[string]string, basedOn *uint64) (settings.Settings, uint64, error) {
	if _, ok := n.r.Now(); !ok {
		return settings.Settings{}, 0, n.r.NotLeaderError()
	}
	p, version := n.r.SettingsState()
	if basedOn != nil && *basedOn != version {
		return settings.Settings{}, 0, fsm.StaleSettings(*basedOn, version)
	}
	next, err := n.current(p).Apply(changes)
	if err != nil {
		return settings.Settings{}, 0, err
	}
	if err := n.r.ProposeSettingsValue(ctx, version, next); err != nil {
		return settings.Settings{}, 0, err
	}
	return next, version + 1, nil
}

// writeInitialSettings runs each time this server becomes a ready leader.
// A cluster with no settings entry (version 0) gets this server's
// configured ones (its flags and admission options), compare-and-set on
// version 0, so exactly one leader's flags become the cluster's initial
// settings. Later, flags only draw a warning (raftnode).
func (n *Node) writeInitialSettings(ctx context.Context) {
	if _, version := n.r.SettingsState(); version != 0 {
		return
	}
	s := n.r.InitialSettings()
	s.Admission = n.queue.Settings()
	err := n.r.ProposeSettingsValue(ctx, 0, s)
	var le *lease.Error
	if errors.As(err, &le) && le.Field == fsm.StaleSettingsField {
		return // another leader's initial settings (or a change) got there first
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("writing this server's configured settings as the cluster's initial settings failed; the built-in defaults stay in force",
			"err", err)
	}
}

// AddMember implements server.AdminBackend.
func (n *Node) AddMember(ctx context.Context, m grpcserver.Member) error {
	return n.r.AddMember(ctx, logentry.Member{ID: m.ID, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr}, m.RaftAddr, m.Voter)
}

// RegisterMember implements server.AdminBackend.
func (n *Node) RegisterMember(ctx context.Context, m grpcserver.Member) error {
	return n.r.RegisterMember(ctx, logentry.Member{ID: m.ID, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr}, m.RaftAddr)
}

// RemoveMember implements server.AdminBackend.
func (n *Node) RemoveMember(ctx context.Context, id string) error { return n.r.RemoveMember(ctx, id) }

// Snapshot implements server.AdminBackend.
func (n *Node) Snapshot(ctx context.Context) ([]byte, uint64, error) { return n.r.Snapshot(ctx) }
