package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/metrics"
	"github.com/leasehold/leasehold/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeBackend struct{ st grpcserver.Status }

func (f fakeBackend) Write(context.Context, []lease.Command) ([]lease.Result, error) { return nil, nil }
func (f fakeBackend) Read(context.Context, bool, func(*fsm.Machine, time.Duration)) (grpcserver.ReadMeta, error) {
	return grpcserver.ReadMeta{}, nil
}
func (f fakeBackend) Status() grpcserver.Status { return f.st }

func testServer(t *testing.T) (*httptest.Server, *metrics.Series) {
	st := grpcserver.Status{ID: "node2", State: "follower", LeaderID: "node-leader-7", Term: 42, CommitIndex: 1234, AppliedIndex: 1230,
		Leases: 77, QueueDepth: 5, Members: []grpcserver.Member{
			{ID: "node-leader-7", RaftAddr: "10.0.0.1:7201", Voter: true, Leader: true},
			{ID: "node2", RaftAddr: "10.0.0.2:7201", Voter: true},
			{ID: "node3", RaftAddr: "10.0.0.3:7201", Voter: false},
		}}
	series := metrics.NewSeries(120)
	now := time.Now()
	for i := 0; i < 30; i++ {
		series.AddOp(now.Add(-2*time.Second), 3*time.Millisecond, i%10 != 0)
	}
	series.AddRejects(now.Add(-2*time.Second), 4)
	srv := httptest.NewServer(New(Options{Backend: fakeBackend{st}, Series: series}))
	t.Cleanup(srv.Close)
	return srv, series
}

func TestEndpoints(t *testing.T) {
	srv, _ := testServer(t)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ok", "/": `id="lease-table"`, "/status.json": `"LeaderID":"node-leader-7"`} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get(srv.URL + "/series.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pts []metrics.Point
	if err := json.NewDecoder(resp.Body).Decode(&pts); err != nil {
		t.Fatal(err)
	}
	ops, errs, rej := 0, 0, 0
	for _, p := range pts {
		ops, errs, rej = ops+p.Ops, errs+p.Errors, rej+p.Rejects
	}
	if ops != 30 || errs != 3 || rej != 4 {
		t.Fatalf("series: ops %d errors %d rejects %d", ops, errs, rej)
	}
}

// TestStatusPageInChromium loads the page in headless Chromium and checks
// what the JavaScript rendered from /status.json.
func TestStatusPageInChromium(t *testing.T) {
	const bin = "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("headless browser test skipped: /usr/bin/chromium not installed (apt-get install -y chromium)")
	}
	srv, _ := testServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", srv.URL+"/")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	dom := string(out)
	for _, want := range []string{
		`data-loaded="yes"`,
		// the fake series refused 4 ops two seconds ago: the banner says so
		`data-state="pushing-back"`, `Pushing back: 4 ops refused in the last 10 s`,
		`<b id="leader">node-leader-7</b>`,
		`<b id="member-count">3</b>`,
		`<b id="term">42</b>`,
		`<b id="indexes">1234 / 1230</b>`,
		`<b id="queue">5</b>`,
		`data-member="node3"`,
		`<tr class="leader" data-member="node-leader-7">`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	// Without a leader the banner says that first, plainly.
	st := grpcserver.Status{ID: "node2", State: "candidate", Term: 43}
	noLeader := httptest.NewServer(New(Options{Backend: fakeBackend{st}, Series: metrics.NewSeries(120)}))
	defer noLeader.Close()
	cmd = exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", noLeader.URL+"/")
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	for _, want := range []string{`data-state="no-leader"`, `No leader: the cluster cannot grant, extend or revoke leases`, `<b id="leader">none</b>`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no-leader DOM lacks %s", want)
		}
	}
}
