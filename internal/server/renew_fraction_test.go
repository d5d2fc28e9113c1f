package server_test

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
)

// TestRenewFractionSettingReachesRenewAfter is issue 17 #12 on a real
// server: the replicated renew_fraction decides the suggested interval.
func TestRenewFractionSettingReachesRenewAfter(t *testing.T) {
	s := startOne(t, "f1", t.TempDir(), nil)
	defer s.Close()
	bootstrapAlone(t, s)
	cl := newClient(t, client.Config{}, s.ClientAddr())
	if _, err := cl.SetSettings(ctxT(t), map[string]string{"renew_fraction": "0.25"}); err != nil {
		t.Fatal(err)
	}
	r, err := cl.Claim(ctxT(t), mustKey("app/f/one"), "h", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A quarter of the lease, stretched towards 0.625 only under load.
	if r.RenewAfter < 15*time.Second || r.RenewAfter >= 30*time.Second {
		t.Fatalf("renew after %v with renew_fraction 0.25; want 15s (up to 37.5s only when loaded)", r.RenewAfter)
	}
}
