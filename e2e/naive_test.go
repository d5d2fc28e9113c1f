package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/lease"
)

// TestNaiveBulkCallerGoneIsNotOK is a regression test: in node.Naive mode a
// multi-op write whose caller left while its entries were in flight
// answered the ops it had not heard back about with zero Results, which
// read as CodeOK (a success that never happened). They must carry the
// context's verdict instead.
func TestNaiveBulkCallerGoneIsNotOK(t *testing.T) {
	e := start(t, func(o *devcluster.Options) { o.Node = backend.Options{Mode: backend.Naive} })
	l := e.leader(t)
	release := e.stores[l.ID].stall()
	t.Cleanup(release)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := l.Node().Write(ctx, []lease.Command{
		{Op: lease.OpClaim, Key: key("naive", "a"), Holder: "u/0", Duration: 10 * time.Second},
		{Op: lease.OpClaim, Key: key("naive", "b"), Holder: "u/0", Duration: 10 * time.Second},
	})
	release()
	if err != nil {
		return // one error for the whole call is an honest answer too
	}
	for i, r := range res {
		if r.Code == lease.CodeOK {
			t.Errorf("op %d answered OK though its caller left before it was applied: %+v", i, r)
		}
	}
}
