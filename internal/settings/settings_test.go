package settings

import (
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

func TestRoundTrip(t *testing.T) {
	s := Default()
	s.Limits.MaxDuration = 90 * time.Second
	s.TickInterval = 100 * time.Millisecond
	s.Admission.MaxQueuedOps = 5000
	s.Admission.Deadlines.Extend = 7 * time.Second
	s.Admission.ClaimShare = 0.3
	s.RenewFraction = 0.4
	got, err := Unmarshal(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Fatalf("round trip: got %+v want %+v", got, s)
	}
	// Later versions append fields: trailing bytes are skipped.
	if got, err := Unmarshal(append(s.Marshal(), 1, 2, 3)); err != nil || got != s {
		t.Fatalf("trailing bytes: %v %+v", err, got)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	full := Default().Marshal()
	for n := 0; n < len(full); n++ {
		if _, err := Unmarshal(full[:n]); !errors.Is(err, ErrBadPayload) {
			t.Fatalf("truncated to %d: err %v", n, err)
		}
	}
	if _, err := Unmarshal(append([]byte{2}, full[1:]...)); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("version 2 accepted: %v", err)
	}
}

// The state machine reads the limits at the head of the payload itself
// (it must not depend on this package); the two codecs must agree.
func TestStateMachineReadsTheLimits(t *testing.T) {
	for _, l := range []lease.Limits{lease.DefaultLimits, {MinDuration: time.Millisecond, MaxDuration: 24 * time.Hour},
		{MinDuration: 3 * time.Second, MaxDuration: 3 * time.Second}} {
		s := Default()
		s.Limits = l
		s.TickInterval = 10 * time.Millisecond
		got, err := fsm.DecodeLimits(s.Marshal())
		if err != nil || got != l {
			t.Fatalf("fsm.DecodeLimits(%v) = %v, %v", l, got, err)
		}
	}
	if _, err := fsm.DecodeLimits([]byte{9}); err == nil {
		t.Fatal("fsm.DecodeLimits accepted garbage")
	}
}

func TestValidateNamesField(t *testing.T) {
	cases := map[string]string{
		"max_duration=10ms":      "max_duration",
		"min_duration=0s":        "min_duration",
		"tick_interval=5ms":      "tick_interval",
		"tick_interval=2s":       "tick_interval", // above min_duration (1s)
		"renew_fraction=1":       "renew_fraction",
		"max_in_flight=0":        "max_in_flight",
		"deadlines.claim=1ms":    "deadlines.claim",
		"claim_share=0.9":        "claim_share",
		"max_ops_per_entry=x":    "max_ops_per_entry",
		"nonsense=1":             "nonsense",
		"max_queued_ops=1.5":     "max_queued_ops",
		"deadline_margin=banana": "deadline_margin",
	}
	for kv, field := range cases {
		k, v, _ := cutEq(kv)
		_, err := Default().Apply(map[string]string{k: v})
		var le *lease.Error
		if !errors.As(err, &le) || le.Code != lease.CodeInvalidArgument || le.Field != field {
			t.Errorf("%s: got %v, want invalid_argument on %s", kv, err, field)
		}
	}
}

func cutEq(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestApplyAndMap(t *testing.T) {
	s, err := Default().Apply(map[string]string{"max_duration": "2m", "MAX_QUEUED_OPS": "4096", "renew_fraction": "0.25"})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Map()
	if m["max_duration"] != "2m0s" || m["max_queued_ops"] != "4096" || m["renew_fraction"] != "0.25" {
		t.Fatalf("map: %v", m)
	}
	if len(m) != len(Keys()) {
		t.Fatalf("map has %d keys, Keys %d", len(m), len(Keys()))
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if got := Current(nil, s); got != s {
		t.Fatal("Current(nil) is not base")
	}
	if got := Current(s.Marshal(), Default()); got != s {
		t.Fatal("Current(payload) did not decode")
	}
}
