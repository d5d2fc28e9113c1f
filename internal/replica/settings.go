package replica

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/settings"
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
	if s.Limits != n.cfg.Limits {
		// The flags are initial settings only: the replicated ones decide.
		n.log.Warn("this server's --min-duration/--max-duration differ from the cluster's replicated settings, which apply; change them with `leasehold settings set`",
			"flag_min_duration", n.cfg.Limits.MinDuration, "flag_max_duration", n.cfg.Limits.MaxDuration,
			"min_duration", s.Limits.MinDuration, "max_duration", s.Limits.MaxDuration)
	}
}

// OnLeaderReady registers fn to run each time this node becomes a ready
// leader (its clock running), with a context cancelled when it steps down.
func (n *Node) OnLeaderReady(fn func(ctx context.Context)) { n.leaderReadyFn.Store(&fn) }

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
	p, _ := n.SettingsState()
	return p
}

// SettingsState is the payload of the last accepted settings entry and the
// replicated settings version, read together.
func (n *Node) SettingsState() (payload []byte, version uint64) {
	n.sm.read(func(m *fsm.Machine) { payload, version = m.Settings(), m.SettingsVersion() })
	return payload, version
}

// InitialSettings are this server's configured settings (its flags): the
// defaults with its configured limits and tick. They are written to the log
// once, by the first leader of a cluster that has no settings yet; after
// that the replicated settings apply and these only draw a warning.
func (n *Node) InitialSettings() settings.Settings {
	s := settings.Default()
	s.Limits, s.TickInterval = n.cfg.Limits, n.cfg.TickInterval
	return s
}

// ProposeSettingsValue validates s and appends it as a settings change
// based on settings version basedOn, returning once it is applied here.
func (n *Node) ProposeSettingsValue(ctx context.Context, basedOn uint64, s settings.Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	return n.ProposeSettings(ctx, basedOn, s.Marshal())
}
