package fsm

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/logentry"
	"github.com/leasehold/leasehold/settings"
)

func TestSettingsEntryChangesLimitsAtItsPosition(t *testing.T) {
	m := New(lease.DefaultLimits)
	key := lease.Key{Namespace: "ns", Group: "g", Name: "a"}
	claim := func(idx uint64, d time.Duration) lease.Result {
		e := logentry.Entry{Kind: logentry.KindBatch, Time: time.Duration(idx) * time.Millisecond,
			Commands: []lease.Command{{Op: lease.OpClaim, Key: key, Holder: "h", Duration: d, Deadline: time.Hour}}}
		return m.Apply(idx, &e)[0]
	}
	if r := claim(1, 2*time.Minute); r.Code != lease.CodeOK {
		t.Fatalf("claim under default limits: %+v", r)
	}
	s := settings.Default()
	s.Limits.MaxDuration = time.Minute
	m.Apply(2, &logentry.Entry{Kind: logentry.KindSettings, Time: 2 * time.Millisecond, Payload: s.Marshal()})
	if got := m.Limits(); got != s.Limits {
		t.Fatalf("limits after settings entry: %v", got)
	}
	if r := claim(3, 2*time.Minute); r.Code != lease.CodeInvalidArgument || r.Field != "duration" {
		t.Fatalf("claim over the new max: %+v", r)
	}
	// A garbage payload is stored but leaves the limits alone.
	m.Apply(4, &logentry.Entry{Kind: logentry.KindSettings, Time: 4 * time.Millisecond, Payload: []byte{42}})
	if got := m.Limits(); got != s.Limits {
		t.Fatalf("limits after bad payload: %v", got)
	}
	m.Apply(5, &logentry.Entry{Kind: logentry.KindSettings, Time: 5 * time.Millisecond, Payload: s.Marshal()})

	// A replica restored from a snapshot (configured with other limits)
	// adopts the snapshot's.
	r := New(lease.DefaultLimits)
	if err := r.Restore(m.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	if got := r.Limits(); got != s.Limits {
		t.Fatalf("limits after restore: %v", got)
	}
}
