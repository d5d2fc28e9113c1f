package server_test

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/lease"
)

func TestLiveSettingsReachEveryServer(t *testing.T) {
	c := startCluster(t, devcluster.Options{})
	leader := c.Leader()
	// Start at a follower: the client must follow the NotLeader hint.
	var follower *devcluster.Member
	for _, m := range c.Members {
		if m != leader {
			follower = m
			break
		}
	}
	cl := newClient(t, client.Config{}, follower.ClientAddr)
	key, _ := lease.ParseKey("app/lead/x")
	if _, err := cl.Claim(ctxT(t), key, "a", 2*time.Minute); err != nil {
		t.Fatalf("claim under default limits: %v", err)
	}
	got, err := cl.SetSettings(ctxT(t), map[string]string{"max_duration": "1m", "max_queued_ops": "5000", "tick_interval": "40ms", "deadlines.extend": "7s"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Replicated || value(got, "max_duration") != "1m0s" {
		t.Fatalf("answer: %+v", got)
	}
	for _, m := range c.Members {
		waitFor(t, 5*time.Second, m.ID+" applies the settings", func() bool {
			n := m.Node()
			q := n.Queue().Settings()
			return n.Limits().MaxDuration == time.Minute && q.MaxQueuedOps == 5000 &&
				q.Deadlines.Extend == 7*time.Second && n.Raft().TickInterval() == 40*time.Millisecond
		})
	}
	_, err = cl.Claim(ctxT(t), key, "b", 2*time.Minute)
	if lease.CodeOf(err) != lease.CodeInvalidArgument {
		t.Fatalf("claim over the new max: %v, want invalid_argument", err)
	}
	// An invalid change is refused, naming the field, and changes nothing.
	_, err = cl.SetSettings(ctxT(t), map[string]string{"min_duration": "2m"})
	var le *lease.Error
	if !errors.As(err, &le) || le.Code != lease.CodeInvalidArgument || le.Field != "max_duration" {
		t.Fatalf("invalid change: %v", err)
	}
	// Settings survive a restart (from the log or a snapshot).
	if err := c.Stop(follower.Index); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(follower.Index); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "restarted server re-applies the settings", func() bool {
		n := follower.Node()
		return n.Limits().MaxDuration == time.Minute && n.Queue().Settings().MaxQueuedOps == 5000
	})
}

func value(s *client.Settings, key string) string {
	for _, kv := range s.Settings {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

func scrape(t *testing.T, httpAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue returns the value of the sample whose line starts with series.
func metricValue(t *testing.T, text, series string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s in:\n%s", series, grepLines(text, "leasehold_"))
	}
	return m[1]
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsAfterKnownOperations(t *testing.T) {
	c := startCluster(t, devcluster.Options{})
	leader := c.Leader()
	cl := newClient(t, client.Config{}, leader.ClientAddr)
	k1, _ := lease.ParseKey("app/lead/one")
	k2, _ := lease.ParseKey("app/lead/two")
	for _, k := range []lease.Key{k1, k2} {
		if _, err := cl.Claim(ctxT(t), k, "a", 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Claim(ctxT(t), k1, "b", 2*time.Second); lease.CodeOf(err) != lease.CodeDenied {
		t.Fatalf("want denied, got %v", err)
	}
	if _, err := cl.Revoke(ctxT(t), k2, "a"); err != nil {
		t.Fatal(err)
	}
	// k1 expires on its own: wait for the event to be counted.
	waitFor(t, 10*time.Second, "k1 expiry counted", func() bool {
		return metricValue(t, scrape(t, leader.HTTPAddr), `leasehold_lease_events_total{kind="expired"}`) == "1"
	})
	text := scrape(t, leader.HTTPAddr)
	for series, want := range map[string]string{
		`leasehold_op_seconds_count{op="Claim",result="ok"}`:        "2",
		`leasehold_op_seconds_count{op="Claim",result="denied"}`:    "1",
		`leasehold_op_seconds_count{op="Revoke",result="ok"}`:       "1",
		`leasehold_lease_events_total{kind="expired"}`:              "1",
		`leasehold_leases_held`:                                     "0",
		`leasehold_raft_state{state="leader"}`:                      "1",
		`leasehold_is_leader`:                                       "1",
		`leasehold_members{suffrage="voter"}`:                       "3",
		`leasehold_queue_depth{lane="claim"}`:                       "0",
		`leasehold_rejects_total{lane="claim",reason="overloaded"}`: "0",
	} {
		if got := metricValue(t, text, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	// Three claims and a revoke went through the queue: at least one entry,
	// at most four, carried those four ops.
	if n := metricValue(t, text, "leasehold_entry_ops_sum"); n != "4" {
		t.Errorf("entry_ops_sum = %s, want 4", n)
	}
	if v := metricValue(t, text, "leasehold_raft_term"); v == "0" {
		t.Error("raft term is 0")
	}
	for _, name := range []string{"leasehold_queue_wait_seconds_bucket", "leasehold_commit_seconds_count", "leasehold_raft_commit_index", "leasehold_raft_applied_index", "leasehold_apply_lag_entries", "leasehold_leader_changes_total"} {
		if !strings.Contains(text, name) {
			t.Errorf("missing %s", name)
		}
	}
	// A follower's registry is its own: it served none of these calls.
	for _, m := range c.Members {
		if m != leader {
			ft := scrape(t, m.HTTPAddr)
			if strings.Contains(ft, `leasehold_op_seconds_count{op="Claim"`) {
				t.Errorf("%s counted the leader's calls", m.ID)
			}
			if metricValue(t, ft, `leasehold_raft_state{state="follower"}`) != "1" {
				t.Errorf("%s is not a follower in its metrics", m.ID)
			}
		}
	}
}
