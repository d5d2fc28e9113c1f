package raftnode

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/fsm"
	"github.com/leasehold/leasehold/settings"
)

// initSettings wires the state machine's settings hook before Raft starts,
// so entries replayed at start are seen too.
func (n *Node) initSettings() {
	n.tickNanos.Store(int64(n.cfg.TickInterval))
	n.sm.onSettings = n.settingsApplied
}

// settingsApplied runs on Raft's apply goroutine for every applied settings
// entry (and restored snapshot). The fsm already adopted the duration limits
// at the entry's position; the tick and the registered callback (the
// admission queue) follow here.
func (n *Node) settingsApplied(payload []byte) {
	s, err := settings.Unmarshal(payload)
	if err != nil || s.Validate() != nil {
		n.log.Warn("ignoring undecodable or invalid settings entry", "err", err)
		return
	}
	n.tickNanos.Store(int64(s.TickInterval))
	if fn := n.settingsFn.Load(); fn != nil {
		(*fn)(payload)
	}
	n.log.Info("cluster settings applied", "min_duration", s.Limits.MinDuration, "max_duration", s.Limits.MaxDuration, "tick", s.TickInterval)
}

func (n *Node) tickInterval() time.Duration { return time.Duration(n.tickNanos.Load()) }

// TickInterval is the idle tick interval in force.
func (n *Node) TickInterval() time.Duration { return n.tickInterval() }

// OnSettings registers fn for the payload of every settings entry applied
// from now on; when settings were already applied (recovered from a snapshot
// or the log), fn is called with the current payload first. fn runs on the
// apply path: it must be quick.
func (n *Node) OnSettings(fn func(payload []byte)) {
	n.settingsFn.Store(&fn)
	if p := n.SettingsPayload(); p != nil {
		fn(p)
	}
}

// SettingsPayload is the payload of the last applied settings entry (nil if
// the cluster never changed its settings).
func (n *Node) SettingsPayload() []byte {
	var p []byte
	n.sm.read(func(m *fsm.Machine) { p = m.Settings() })
	return p
}

// BaseSettings are the settings this server runs with until the cluster
// applies a settings entry: the defaults with its configured limits and tick.
func (n *Node) BaseSettings() settings.Settings {
	s := settings.Default()
	s.Limits, s.TickInterval = n.cfg.Limits, n.cfg.TickInterval
	return s
}

// ProposeSettingsValue validates s and appends it as a settings entry on the
// leader, returning once it is applied here.
func (n *Node) ProposeSettingsValue(ctx context.Context, s settings.Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	return n.ProposeSettings(ctx, s.Marshal())
}
