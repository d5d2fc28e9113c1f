package wire

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/leasehold/leasehold/lease"
)

// The slab's messages are the ones ResultPB and CommandPB make, one by
// one, also past the slab's capacity.
func TestSlabsConvertAsSingleMessages(t *testing.T) {
	k := lease.Key{Namespace: "ns", Group: "g", Name: "n"}
	results := []lease.Result{
		{Outcome: lease.OutcomeGranted, Holder: "a", Token: 7, Start: time.Second, Expiry: 3 * time.Second, Now: time.Second},
		{Outcome: lease.OutcomeExtended, Holder: "b", Token: 9, Start: 2 * time.Second, Expiry: 9 * time.Second, Now: 2 * time.Second},
		{Outcome: lease.OutcomeQueued, Position: 3, WaitExpiry: 5 * time.Second, Now: 4 * time.Second},
		{Outcome: lease.OutcomeRevoked, Now: 5 * time.Second},
	}
	slab := NewResultSlab(2)
	for i := range results {
		got, want := slab.ResultPB(k, &results[i]), ResultPB(k, &results[i])
		if !proto.Equal(got, want) {
			t.Errorf("result %d: slab %v, single %v", i, got, want)
		}
	}
	cmds := []lease.Command{
		{Op: lease.OpClaim, Key: k, Holder: "a", Duration: 3 * time.Second},
		{Op: lease.OpQueueClaim, Key: lease.Key{Namespace: "x", Group: "y", Name: "z"}, Holder: "b", Duration: time.Second, Wait: time.Minute},
		{Op: lease.OpRevoke, Key: k, Holder: "a"},
	}
	for i, got := range CommandsPB(cmds) {
		if want := CommandPB(&cmds[i]); !proto.Equal(got, want) {
			t.Errorf("command %d: %v, want %v", i, got, want)
		}
	}
}
