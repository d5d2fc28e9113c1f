package web_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/lease"
)

const chromiumBin = "/usr/bin/chromium"

// startCluster runs an in-process cluster on loopback free ports and a
// client to it; both are closed when the test ends.
func startCluster(t testing.TB, size int) (*devcluster.Cluster, *client.Client, string) {
	t.Helper()
	c, err := devcluster.Start(context.Background(), devcluster.Options{Size: size, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, m := range c.Members {
		addrs = append(addrs, m.ClientAddr)
	}
	cl, err := client.New(client.Config{Endpoints: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl, "http://" + leader.Server().HTTPAddr()
}

// chromium runs headless Chromium with args and the URL, bounded in time.
func chromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=4000"}, args...)
	cmd := exec.CommandContext(ctx, chromiumBin, append(all, url)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, out)
	}
	return out
}

// TestLeasesInChromium claims leases on a real 3-node cluster, loads the
// status page in headless Chromium with a search for one holder, and checks
// the table shows that lease and only it, with its token, countdown and pin;
// then loads the lease's own page and checks its history. With
// LEASEHOLD_SCREENSHOT=path it also saves a screenshot of the page there
// (docs/status-page.png is made that way).
func TestLeasesInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skip("headless browser test skipped: /usr/bin/chromium not installed (apt-get install -y chromium)")
	}
	_, cl, base := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tokens = map[string]uint64{}
	for i := 0; i < 25; i++ {
		k := lease.Key{Namespace: "payments", Group: fmt.Sprintf("shard-%d", i%3), Name: fmt.Sprintf("worker-%02d", i)}
		r, err := cl.Claim(ctx, k, fmt.Sprintf("host-%02d.dc1", i), 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tokens[k.Name] = r.Token
	}
	target := lease.Key{Namespace: "payments", Group: "shard-1", Name: "worker-07"}
	// A history for the lease page: host-07 leaves, host-99 takes over and
	// renews, an operator pins it.
	if _, err := cl.Revoke(ctx, target, "host-07.dc1"); err != nil {
		t.Fatal(err)
	}
	r, err := cl.Claim(ctx, target, "host-99.dc2", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := cl.Extend(ctx, target, "host-99.dc2", 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Pin(ctx, target, "upgrade-bot"); err != nil {
		t.Fatal(err)
	}
	// The history is fed asynchronously from the watch: wait until the
	// leader's page has recorded the pin (a condition, not a sleep).
	waitFor(t, base+"/lease.json?ns=payments&group=shard-1&name=worker-07", `"kind":"pinned"`)

	dom := string(chromium(t, base+"/?holder=host-99", "--dump-dom"))
	for _, want := range []string{
		`data-loaded="yes"`, `data-leases-loaded="yes"`,
		`<tr data-lease="payments/shard-1/worker-07">`,
		`<td>host-99.dc2</td>`,
		fmt.Sprintf(`<td class="num">%d</td>`, r.Token),
		`<td>upgrade-bot</td>`,
		`data-matched="1"`,
		`value="host-99"`, // the search box shows the search
		`data-state="ok"`,
		`class="t-label"`, // the charts have labelled time axes
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("status page DOM lacks %s", want)
		}
	}
	if strings.Contains(dom, "worker-08") || strings.Contains(dom, "host-07") {
		t.Errorf("the search shows leases it should not")
	}
	if n := strings.Count(dom, "<tr data-lease="); n != 1 {
		t.Errorf("%d lease rows, want 1", n)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	page := string(chromium(t, base+"/lease?ns=payments&group=shard-1&name=worker-07", "--dump-dom"))
	for _, want := range []string{`<td id="holder">host-99.dc2</td>`, `<td id="pinned">upgrade-bot </td>`,
		`<tr data-kind="pinned">`, `<tr data-kind="claimed"><td>claimed</td><td>host-99.dc2</td>`, `<tr data-kind="revoked"><td>revoked</td><td>host-07.dc1</td>`,
		fmt.Sprintf(`<tr data-kind="claimed"><td>claimed</td><td>host-07.dc1</td><td>%d</td>`, tokens["worker-07"])} {
		if !strings.Contains(page, want) {
			t.Errorf("lease page lacks %s", want)
		}
	}
	if strings.Contains(page, `data-kind="extended"`) {
		// Renewals are not recorded while no watcher asks for them.
		t.Errorf("lease page shows extends")
	}
	if t.Failed() {
		t.Logf("lease page:\n%s", page)
	}

	// A screenshot: a real PNG of the page as an operator sees it.
	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, base+"/?ns=payments", "--screenshot="+shot, "--window-size=1280,1900")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if img.Bounds().Dx() != 1280 {
		t.Fatalf("screenshot is %v", img.Bounds())
	}
	if dst := os.Getenv("LEASEHOLD_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls url until its body contains want (bounded).
func waitFor(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never showed %s; last: %s", url, want, b)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
