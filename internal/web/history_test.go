package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

// TestHistoryRecordsTenures: a lease's rows come from the hub's window,
// newest first, consecutive extends of one tenure collapsed into one row,
// at most perKey rows.
func TestHistoryRecordsTenures(t *testing.T) {
	b := newMachineBackend()
	hub := grpcserver.NewWatchHub(0, 0)
	h := NewHistory(hub, 4)
	k := lease.Key{Namespace: "ns", Group: "g", Name: "leader"}
	other := lease.Key{Namespace: "ns", Group: "g", Name: "other"}
	hub.Publish(b.apply(time.Second, claimCmd("ns", "g", "leader", "alice"), claimCmd("ns", "g", "other", "carol")))
	for i := 2; i < 6; i++ {
		hub.Publish(b.apply(time.Duration(i)*time.Second, lease.Command{Op: lease.OpExtend, Key: k, Holder: "alice", Duration: time.Minute},
			lease.Command{Op: lease.OpExtend, Key: other, Holder: "carol", Duration: time.Minute}))
	}
	hub.Publish(b.apply(6*time.Second, lease.Command{Op: lease.OpRevoke, Key: k, Holder: "alice"}))
	hub.Publish(b.apply(7*time.Second, claimCmd("ns", "g", "leader", "bob")))
	rows, from := h.Rows(k)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s x%d", r.Kind, r.Holder, r.Count))
	}
	if want := "claimed bob x1|revoked alice x1|extended alice x4|claimed alice x1"; strings.Join(got, "|") != want {
		t.Fatalf("rows %q, want %q", strings.Join(got, "|"), want)
	}
	if r := rows[2]; r.First != 2*time.Second || r.At != 5*time.Second {
		t.Fatalf("collapsed extends span %v-%v, want 2s-5s", r.First, r.At)
	}
	if rows[0].Token <= rows[3].Token {
		t.Fatalf("bob's token %d not after alice's %d", rows[0].Token, rows[3].Token)
	}
	if from != 1 {
		t.Fatalf("window from index %d, want 1", from)
	}
	// At perKey rows the oldest goes.
	hub.Publish(b.apply(8*time.Second, lease.Command{Op: lease.OpRevoke, Key: k, Holder: "bob"}))
	if rows, _ := h.Rows(k); len(rows) != 4 || rows[3].Kind != "extended" || rows[3].Count != 4 {
		t.Fatalf("after a fifth row: %+v", rows)
	}
}

// TestHistoryIsTheHubWindow: events that left the hub's window leave the
// history, and the page learns from which index it covers.
func TestHistoryIsTheHubWindow(t *testing.T) {
	b := newMachineBackend()
	hub := grpcserver.NewWatchHub(4, 0)
	h := NewHistory(hub, 0)
	k := lease.Key{Namespace: "n", Group: "g", Name: "0"}
	hub.Publish(b.apply(time.Second, claimCmd("n", "g", "0", "h")))
	if rows, _ := h.Rows(k); len(rows) != 1 {
		t.Fatalf("rows %+v, want the claim", rows)
	}
	for i := 1; i <= 4; i++ {
		hub.Publish(b.apply(time.Second, claimCmd("n", "g", fmt.Sprint(i), "h")))
	}
	rows, from := h.Rows(k)
	if len(rows) != 0 || from != 2 {
		t.Fatalf("after 4 more events in a window of 4: rows %+v from %d, want none from index 2", rows, from)
	}
	if rows, _ := h.Rows(lease.Key{Namespace: "n", Group: "g", Name: "4"}); len(rows) != 1 || rows[0].Index != 5 {
		t.Fatalf("newest lease's rows %+v", rows)
	}
}
