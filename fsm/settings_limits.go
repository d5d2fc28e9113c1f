package fsm

import "github.com/leasehold/leasehold/settings"

// adoptSettingsLimits makes the duration limits of the settings payload
// (from a settings entry or a snapshot) the ones later commands are checked
// against. It runs at the same log position on every replica, so a claim
// right after a settings change is judged alike everywhere. An undecodable
// or invalid payload leaves the limits as they were.
func (m *Machine) adoptSettingsLimits() {
	if l, ok := settings.DecodeLimits(m.settings); ok {
		m.limits = l
	}
}
