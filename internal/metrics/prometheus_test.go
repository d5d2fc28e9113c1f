package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// TestPrometheusScrapesCluster runs Leasehold's rules in a real Prometheus
// (Debian's `prometheus` package) scraping a real cluster: it starts a
// 3-server cluster on loopback free ports, claims leases, starts
// Prometheus with deploy/prometheus's rules
// scraping the servers' /metrics, and checks that queries over Leasehold's
// metrics and recording rules return the cluster's data and that the rules
// load and evaluate without error. Everything it starts is stopped, and its
// directories removed, when it ends.
func TestPrometheusScrapesCluster(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("real-Prometheus test skipped: no `prometheus` binary on PATH (apt-get install -y prometheus; scripts/ci-ops.sh does)")
	}
	rules, err := filepath.Abs("../../deploy/prometheus/leasehold.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := devcluster.Start(context.Background(), devcluster.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	var addrs, targets []string
	for _, m := range c.Members {
		addrs = append(addrs, m.ClientAddr)
		targets = append(targets, fmt.Sprintf("'%s'", m.Server().HTTPAddr()))
	}
	cl, err := client.New(client.Config{Endpoints: addrs})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const leases = 12
	for i := 0; i < leases; i++ {
		if _, err := cl.Claim(ctx, lease.Key{Namespace: "prom", Group: "g", Name: fmt.Sprint(i)}, "h", 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	port := freePort(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['%s']
scrape_configs:
  - job_name: leasehold-test
    static_configs:
      - targets: [%s]
`, rules, strings.Join(targets, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	// Leasehold's own gauge, from every server (followers may apply the
	// last claims a moment later: wait for the condition).
	res := waitQuery(t, base, "leasehold_leases_held", func(r []sample) bool {
		if len(r) != 3 {
			return false
		}
		for _, s := range r {
			if s.Value != fmt.Sprint(leases) {
				return false
			}
		}
		return true
	})
	t.Logf("leasehold_leases_held: %v", res)
	// A recording rule from deploy/prometheus, evaluated by Prometheus.
	waitQuery(t, base, "leasehold:leaders:count", func(r []sample) bool {
		return len(r) == 1 && r[0].Value == "1" && r[0].Metric["job"] == "leasehold-test"
	})
	// The claims went through the API: their latency histogram has them.
	waitQuery(t, base, `sum(leasehold_op_seconds_count{op="Claim",result="ok"})`, func(r []sample) bool {
		return len(r) == 1 && r[0].Value == fmt.Sprint(leases)
	})
	// The fsync histogram (metrics.WrapLogStore) is fed on every server.
	waitQuery(t, base, "leasehold_fsync_seconds_count > 0", func(r []sample) bool { return len(r) == 3 })

	// Every rule group loaded and evaluates cleanly, and a healthy cluster
	// fires no alert.
	var rr struct {
		Data struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Name, Health, LastError, State string
				}
			}
		}
	}
	getJSON(t, base+"/api/v1/rules", &rr)
	n := 0
	for _, g := range rr.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" && r.Health != "unknown" || r.LastError != "" {
				t.Errorf("rule %s/%s: health %s, error %q", g.Name, r.Name, r.Health, r.LastError)
			}
			if r.State == "firing" {
				t.Errorf("alert %s fires on a healthy cluster", r.Name)
			}
		}
	}
	if n != 17 {
		t.Errorf("Prometheus loaded %d rules, want 17", n)
	}
}

type sample struct {
	Metric map[string]string
	Value  string
}

// waitQuery runs an instant query until ok accepts its result (bounded).
func waitQuery(t *testing.T, base, q string, ok func([]sample) bool) []sample {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last []sample
	for time.Now().Before(deadline) {
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if getJSONErr(base+"/api/v1/query?query="+url.QueryEscape(q), &r) == nil && r.Status == "success" {
			last = last[:0]
			for _, s := range r.Data.Result {
				last = append(last, sample{Metric: s.Metric, Value: fmt.Sprint(s.Value[1])})
			}
			if ok(last) {
				return last
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("query %s never gave the expected result; last: %v", q, last)
	return nil
}

func getJSONErr(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	if err := getJSONErr(u, v); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
