package node

import (
	"context"
	"math"
	"sync"

	"github.com/leasehold/leasehold/logentry"
	"github.com/leasehold/leasehold/server"
	"github.com/leasehold/leasehold/settings"
)

var _ server.AdminBackend = (*Node)(nil)

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

// Settings implements server.AdminBackend.
func (n *Node) Settings() (settings.Settings, bool) {
	p := n.r.SettingsPayload()
	base := n.r.BaseSettings()
	base.Admission = n.queue.Settings()
	return settings.Current(p, base), p != nil
}

// setMu serialises read-modify-write of the settings in this process, so two
// admins changing different keys do not undo each other's change.
var setMu sync.Mutex

// SetSettings implements server.AdminBackend.
func (n *Node) SetSettings(ctx context.Context, changes map[string]string) (settings.Settings, error) {
	if _, ok := n.r.Now(); !ok {
		return settings.Settings{}, n.r.NotLeaderError()
	}
	setMu.Lock()
	defer setMu.Unlock()
	cur, _ := n.Settings()
	next, err := cur.Apply(changes)
	if err != nil {
		return settings.Settings{}, err
	}
	if err := n.r.ProposeSettingsValue(ctx, next); err != nil {
		return settings.Settings{}, err
	}
	return next, nil
}

// AddMember implements server.AdminBackend.
func (n *Node) AddMember(ctx context.Context, m server.Member) error {
	return n.r.AddMember(ctx, logentry.Member{ID: m.ID, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr}, m.RaftAddr, m.Voter)
}

// RemoveMember implements server.AdminBackend.
func (n *Node) RemoveMember(ctx context.Context, id string) error { return n.r.RemoveMember(ctx, id) }

// Snapshot implements server.AdminBackend.
func (n *Node) Snapshot(ctx context.Context) ([]byte, uint64, error) { return n.r.Snapshot(ctx) }
