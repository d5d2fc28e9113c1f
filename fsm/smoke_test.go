package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/logentry"
)

func TestSmoke(t *testing.T) {
	m := New(lease.DefaultLimits)
	k := lease.Key{Namespace: "ns", Group: "g", Name: "app"}
	e := &logentry.Entry{Kind: logentry.KindBatch, Time: time.Second, Commands: []lease.Command{
		{Op: lease.OpClaim, Key: k, Holder: "u/0", Duration: 10 * time.Second, Deadline: 2 * time.Second},
		{Op: lease.OpClaim, Key: k, Holder: "u/1", Duration: 10 * time.Second, Deadline: 2 * time.Second},
	}}
	dec, err := logentry.Decode(e.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	res := m.Apply(1, &dec)
	if res[0].Outcome != lease.OutcomeGranted || res[1].Code != lease.CodeDenied || res[1].Holder != "u/0" {
		t.Fatalf("results %+v", res)
	}
	m.Apply(2, &logentry.Entry{Kind: logentry.KindBatch, Time: 11 * time.Second})
	if _, ok := m.Get(k, 0); !ok {
		t.Fatal("expired at start+duration; expiry must be strict")
	}
	snap := m.AppendSnapshot(nil)
	m2 := New(lease.DefaultLimits)
	if err := m2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, m2.AppendSnapshot(nil)) {
		t.Fatal("snapshot round trip differs")
	}
	m.Apply(3, &logentry.Entry{Kind: logentry.KindBatch, Time: 11*time.Second + 1})
	if _, ok := m.Get(k, 0); ok || m.Len() != 0 {
		t.Fatal("not expired after start+duration")
	}
}
