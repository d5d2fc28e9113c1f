package server_test

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/lease"
)

// The events metric counts every applied event, extends included, without
// the state machine recording extends for it: a server records the events
// its watch window keeps (no extends unless a watcher asks for them), and
// the metric reads the state machine's counts. Before, the metric was fed
// from the recorded events, so it missed extends.
func TestEventsCountedWithoutRecording(t *testing.T) {
	c := startCluster(t, devcluster.Options{})
	leader := c.Leader()
	cl := newClient(t, client.Config{}, leader.ClientAddr)
	k, _ := lease.ParseKey("app/lead/one")
	if _, err := cl.Claim(ctxT(t), k, "a", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Extend(ctxT(t), k, "a", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Revoke(ctxT(t), k, "a"); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, leader.HTTPAddr)
	for kind, want := range map[string]string{"claimed": "1", "extended": "1", "revoked": "1", "expired": "0"} {
		if got := metricValue(t, text, `leasehold_lease_events_total{kind="`+kind+`"}`); got != want {
			t.Errorf("events %s = %s, want %s", kind, got, want)
		}
	}
	for _, m := range c.Members {
		if events, extends := m.Raft().Recording(); !events || extends {
			t.Errorf("%s records events %v, extends %v with no watcher; want the window's events, no extends", m.ID, events, extends)
		}
	}
}
