package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Cluster settings, as far as the state machine is concerned.
//
// The state machine reads two things from a settings payload: the duration
// limits at its head, and nothing else. Every other setting (tick, admission
// knobs) belongs to the leader's write path, which decodes and validates the
// whole payload itself (package settings). So an apply result depends only
// on the log and on the rule in lease.Limits.Validate; never on a server's
// flags, and never on the admission queue's validation code, which a later
// binary may widen.
//
// Until the first settings entry every replica runs with lease.DefaultLimits,
// fixed in code. Each accepted settings entry bumps a replicated settings
// version; a change (logentry.KindSettingsChange) names the version it was
// based on and is refused unless that is still the current one.

// SettingsCodecVersion is the first field of a settings payload. Package
// settings writes it; the state machine reads the limits that follow it.
const SettingsCodecVersion = 1

// DecodeLimits reads the duration limits at the head of a settings payload:
// uvarint SettingsCodecVersion, varint min_duration, varint max_duration
// (nanoseconds); the rest is not the state machine's. The error is a
// CodeInvalidArgument *lease.Error when the payload cannot be decoded or its
// limits break lease.Limits.Validate.
func DecodeLimits(payload []byte) (lease.Limits, error) {
	v, n := binary.Uvarint(payload)
	if n <= 0 || v != SettingsCodecVersion {
		return lease.Limits{}, lease.InvalidArgument("settings", "settings payload has codec version %d (this build reads %d)", v, SettingsCodecVersion)
	}
	b := payload[n:]
	lo, n1 := binary.Varint(b)
	if n1 <= 0 {
		return lease.Limits{}, lease.InvalidArgument("settings", "settings payload truncated at min_duration")
	}
	hi, n2 := binary.Varint(b[n1:])
	if n2 <= 0 {
		return lease.Limits{}, lease.InvalidArgument("settings", "settings payload truncated at max_duration")
	}
	l := lease.Limits{MinDuration: time.Duration(lo), MaxDuration: time.Duration(hi)}
	if err := l.Validate(); err != nil {
		return lease.Limits{}, err
	}
	return l, nil
}

// StaleSettingsField is the Field of a stale settings change's refusal.
const StaleSettingsField = "settings_version"

// StaleSettings is the refusal of a settings change based on version
// basedOn while the settings are at version current.
func StaleSettings(basedOn, current uint64) *lease.Error {
	return &lease.Error{Code: lease.CodeInvalidArgument, Field: StaleSettingsField,
		Message: fmt.Sprintf("settings changed since they were read: the change is based on version %d, the cluster is at version %d; read them again and retry",
			basedOn, current)}
}

// applyLegacySettings applies a KindSettings entry, written by builds before
// the compare-and-set: the payload is kept whatever it is (as those builds
// did), and its limits adopted when valid.
func (m *Machine) applyLegacySettings(payload []byte) {
	m.settings = append([]byte(nil), payload...)
	m.settingsVersion++
	if l, err := DecodeLimits(payload); err == nil {
		m.limits = l
	}
}

// changeSettings applies a KindSettingsChange entry: a compare-and-set on
// the settings version, then a check of the limits.
func (m *Machine) changeSettings(basedOn uint64, payload []byte) lease.Result {
	if basedOn != m.settingsVersion {
		return m.invalid(StaleSettings(basedOn, m.settingsVersion))
	}
	l, err := DecodeLimits(payload)
	if err != nil {
		return m.invalid(err)
	}
	m.settings = append([]byte(nil), payload...)
	m.settingsVersion++
	m.limits = l
	return lease.Result{Code: lease.CodeOK, Now: m.now}
}

// invalid turns a validation error into a CodeInvalidArgument result. Every
// validator here returns a *lease.Error; anything else (a bug) still gives
// the same result on every replica, with the error's text.
func (m *Machine) invalid(err error) lease.Result {
	res := lease.Result{Code: lease.CodeInvalidArgument, Message: err.Error(), Now: m.now}
	var e *lease.Error
	if errors.As(err, &e) {
		res.Field, res.Message = e.Field, e.Message
	}
	return res
}
