package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
)

// TestStatusHistoryRunsNoWatcher: the status page's lease history is read
// from the watch hub's window when a page asks; the server runs no watch of
// its own for it (an always-on watcher and its per-lease index cost 30-35 %
// of the servers' CPU per claim in a claim storm). The page still shows the
// lease's tenures.
func TestStatusHistoryRunsNoWatcher(t *testing.T) {
	s := startOne(t, "h1", t.TempDir(), nil)
	defer s.Close()
	bootstrapAlone(t, s)
	cl := newClient(t, client.Config{}, s.ClientAddr())
	k := mustKey("app/h/one")
	if _, err := cl.Claim(ctxT(t), k, "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Revoke(ctxT(t), k, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Claim(ctxT(t), k, "bob", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := s.Node.Watchers(); n != 0 {
		t.Fatalf("%d watches open on an idle server; the status page's history must not need one", n)
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/lease.json?ns=" + k.Namespace + "&group=" + k.Group + "&name=" + k.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		History []struct {
			Kind, Holder string
		} `json:"history"`
		From uint64 `json:"history_from_index"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range d.History {
		got = append(got, r.Kind+" "+r.Holder)
	}
	if len(got) != 3 || got[0] != "claimed bob" || got[1] != "revoked alice" || got[2] != "claimed alice" {
		t.Fatalf("lease history %q (from index %d), want claimed bob, revoked alice, claimed alice", got, d.From)
	}
}
