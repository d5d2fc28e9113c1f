package settings

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// Settings are the cluster-wide knobs every server applies live.
type Settings struct {
	// Limits bound the lease durations callers may ask for.
	Limits lease.Limits
	// TickInterval is how often an idle leader advances replicated time.
	TickInterval time.Duration
	// Admission are the leader's admission queue knobs and per-op deadlines.
	Admission admission.Settings
	// RenewFraction is the share of a lease's duration after which clients
	// are advised to renew (0.5: renew a 60s lease every 30s).
	RenewFraction float64
}

// DefaultTickInterval is the idle tick of a new cluster.
const DefaultTickInterval = 250 * time.Millisecond

// Default returns the settings of a new cluster.
func Default() Settings {
	return Settings{
		Limits:        lease.DefaultLimits,
		TickInterval:  DefaultTickInterval,
		Admission:     admission.DefaultSettings(),
		RenewFraction: 0.5,
	}
}

// Validate reports the first bad field as a CodeInvalidArgument *lease.Error
// whose Field is the setting's key.
func (s Settings) Validate() error {
	// The limits' rule is the state machine's (lease.Limits.Validate): a
	// change this package accepts is one every replica adopts.
	if err := s.Limits.Validate(); err != nil {
		return err
	}
	switch {
	case s.TickInterval < 10*time.Millisecond || s.TickInterval > 10*time.Second:
		return lease.InvalidArgument("tick_interval", "must be in [10ms, 10s], not %v", s.TickInterval)
	case s.TickInterval > s.Limits.MinDuration:
		// Time advances in ticks when idle; a shorter lease would outlive
		// its duration by up to a tick.
		return lease.InvalidArgument("tick_interval", "must not exceed min_duration (%v), not %v", s.Limits.MinDuration, s.TickInterval)
	case !(s.RenewFraction >= 0.1 && s.RenewFraction <= 0.9):
		return lease.InvalidArgument("renew_fraction", "must be in [0.1, 0.9], not %v", s.RenewFraction)
	}
	return s.Admission.Validate()
}

// Version is the codec version Marshal writes. The head of the payload
// (version, min_duration, max_duration) is the state machine's, read by
// fsm.DecodeLimits: the version is fsm's too.
const Version = fsm.SettingsCodecVersion

// Marshal encodes s: a version, then every field in a fixed order, the
// duration limits first.
func (s Settings) Marshal() []byte {
	b := binary.AppendUvarint(nil, Version)
	for _, d := range s.durations() {
		b = binary.AppendVarint(b, int64(*d.v))
	}
	for _, n := range s.ints() {
		b = binary.AppendVarint(b, int64(*n.v))
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.Admission.ClaimShare))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.RenewFraction))
	return b
}

// ErrBadPayload is the cause of every decoding error.
var ErrBadPayload = errors.New("settings: bad payload")

// Unmarshal decodes a payload written by Marshal. Trailing bytes are
// ignored, so a later version can append fields that this one skips.
func Unmarshal(b []byte) (Settings, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return Settings{}, fmt.Errorf("%w: no version", ErrBadPayload)
	}
	if v != Version {
		return Settings{}, fmt.Errorf("%w: version %d (this build reads %d)", ErrBadPayload, v, Version)
	}
	b = b[n:]
	var s Settings
	for _, d := range s.durations() {
		x, n := binary.Varint(b)
		if n <= 0 {
			return Settings{}, fmt.Errorf("%w: truncated at %s", ErrBadPayload, d.key)
		}
		*d.v, b = time.Duration(x), b[n:]
	}
	for _, f := range s.ints() {
		x, n := binary.Varint(b)
		if n <= 0 || x < math.MinInt32 || x > math.MaxInt32 {
			return Settings{}, fmt.Errorf("%w: bad %s", ErrBadPayload, f.key)
		}
		*f.v, b = int(x), b[n:]
	}
	if len(b) < 16 {
		return Settings{}, fmt.Errorf("%w: truncated at claim_share", ErrBadPayload)
	}
	s.Admission.ClaimShare = math.Float64frombits(binary.LittleEndian.Uint64(b))
	s.RenewFraction = math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	return s, nil
}

type durField struct {
	key string
	v   *time.Duration
}

type intField struct {
	key string
	v   *int
}

// durations and ints list the fields in codec order. Append only.
func (s *Settings) durations() []durField {
	a := &s.Admission
	return []durField{
		{"min_duration", &s.Limits.MinDuration}, {"max_duration", &s.Limits.MaxDuration},
		{"tick_interval", &s.TickInterval},
		{"deadlines.claim", &a.Deadlines.Claim}, {"deadlines.extend", &a.Deadlines.Extend},
		{"deadlines.revoke", &a.Deadlines.Revoke}, {"deadlines.pin", &a.Deadlines.Pin},
		{"deadlines.unpin", &a.Deadlines.Unpin}, {"deadline_margin", &a.DeadlineMargin},
	}
}

func (s *Settings) ints() []intField {
	a := &s.Admission
	return []intField{
		{"max_ops_per_entry", &a.MaxOpsPerEntry}, {"max_bytes_per_entry", &a.MaxBytesPerEntry},
		{"max_in_flight", &a.MaxInFlight}, {"max_queued_ops", &a.MaxQueuedOps},
	}
}

func (s *Settings) floats() map[string]*float64 {
	return map[string]*float64{"claim_share": &s.Admission.ClaimShare, "renew_fraction": &s.RenewFraction}
}

// Keys lists every setting's key, sorted.
func Keys() []string {
	var s Settings
	var keys []string
	for _, d := range s.durations() {
		keys = append(keys, d.key)
	}
	for _, n := range s.ints() {
		keys = append(keys, n.key)
	}
	for k := range s.floats() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Map renders every setting as KEY -> VALUE text (durations as Go durations).
func (s Settings) Map() map[string]string {
	out := make(map[string]string)
	for _, d := range s.durations() {
		out[d.key] = d.v.String()
	}
	for _, n := range s.ints() {
		out[n.key] = strconv.Itoa(*n.v)
	}
	for k, f := range s.floats() {
		out[k] = strconv.FormatFloat(*f, 'g', -1, 64)
	}
	return out
}

// Set parses value into the setting key. It checks the syntax only; call
// Validate once every change is made.
func (s *Settings) Set(key, value string) error {
	key = strings.TrimSpace(strings.ToLower(key))
	value = strings.TrimSpace(value)
	for _, d := range s.durations() {
		if d.key == key {
			v, err := time.ParseDuration(value)
			if err != nil {
				return lease.InvalidArgument(key, "not a duration: %q", value)
			}
			*d.v = v
			return nil
		}
	}
	for _, n := range s.ints() {
		if n.key == key {
			v, err := strconv.Atoi(value)
			if err != nil {
				return lease.InvalidArgument(key, "not an integer: %q", value)
			}
			*n.v = v
			return nil
		}
	}
	if f, ok := s.floats()[key]; ok {
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return lease.InvalidArgument(key, "not a number: %q", value)
		}
		*f = v
		return nil
	}
	return lease.InvalidArgument(key, "unknown setting %q (known: %s)", key, strings.Join(Keys(), ", "))
}

// Apply returns s with every KEY=VALUE change made, validated.
func (s Settings) Apply(changes map[string]string) (Settings, error) {
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := s.Set(k, changes[k]); err != nil {
			return Settings{}, err
		}
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// Current decodes the payload of the last applied settings entry, or returns
// base when there is none (or it cannot be decoded). base must be the
// settings in force without a settings entry: lease.DefaultLimits, not a
// server's flags.
func Current(payload []byte, base Settings) Settings {
	if len(payload) == 0 {
		return base
	}
	s, err := Unmarshal(payload)
	if err != nil {
		return base
	}
	return s
}
