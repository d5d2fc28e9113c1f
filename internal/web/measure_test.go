package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/web"
	"github.com/leasehold/leasehold/lease"
)

// TestMeasurePage100k measures, on a real 3-server cluster holding
// LEASEHOLD_MEASURE_LEASES leases (default 100,000), how long the status
// page's lease listing and search take, and whether serving them stalls
// applies: the claim latency of a steady load with no one on the page,
// then while four clients hammer it with searches (each distinct, so none
// is answered from the scanner's one-second cache), with the scanner's
// duty cycle on and, to compare, off. It prints the numbers; it asserts
// only that everything answered (speed is measured, not asserted). Run it
// with LEASEHOLD_OPS_MEASURE=1 (docs/operations.md has the results).
func TestMeasurePage100k(t *testing.T) {
	if os.Getenv("LEASEHOLD_OPS_MEASURE") == "" {
		t.Skip("measurement: set LEASEHOLD_OPS_MEASURE=1 to run (claims 100,000 leases; about two minutes)")
	}
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("LEASEHOLD_MEASURE_LEASES")); err == nil && v > 0 {
		n = v
	}
	_, cl, base := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	start := time.Now()
	const batch = 2000
	for i := 0; i < n; i += batch {
		var cmds []lease.Command
		for j := i; j < min(i+batch, n); j++ {
			cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: lease.Key{Namespace: "bench", Group: fmt.Sprintf("g%02d", j%20),
				Name: fmt.Sprintf("lease-%07d", j)}, Holder: fmt.Sprintf("holder-%05d", j%5000), Duration: 5 * time.Minute})
		}
		for len(cmds) > 0 {
			res, err := cl.Bulk(ctx, cmds)
			if err != nil {
				t.Fatal(err)
			}
			var retry []lease.Command
			for k, r := range res {
				if r.Err != nil {
					retry = append(retry, cmds[k])
				}
			}
			cmds = retry
		}
	}
	t.Logf("claimed %d leases in %v", n, time.Since(start).Round(time.Millisecond))

	// Answer times, end to end over HTTP (distinct queries: each a scan).
	type answer struct {
		Matched int   `json:"matched"`
		Total   int   `json:"total"`
		Scan    int64 `json:"scan_us"`
		MaxHold int64 `json:"max_hold_us"`
		Reads   int   `json:"reads"`
	}
	get := func(path string) (time.Duration, answer) {
		t0 := time.Now()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		var a answer
		json.Unmarshal(b, &a)
		return d, a
	}
	report := func(what string, paths func(i int) string) {
		var ds, scans []time.Duration
		var a answer
		for i := 0; i < 15; i++ {
			var d time.Duration
			d, a = get(paths(i))
			ds = append(ds, d)
			scans = append(scans, time.Duration(a.MaxHold)*time.Microsecond)
		}
		slices.Sort(ds)
		slices.Sort(scans)
		t.Logf("%-36s median %7v  max %7v  (longest read-lock hold: median %v, max %v; %d reads, %v in all; matched %d of %d)", what,
			ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond),
			scans[len(scans)/2].Round(10*time.Microsecond), scans[len(scans)-1].Round(10*time.Microsecond),
			a.Reads, (time.Duration(a.Scan) * time.Microsecond).Round(10*time.Microsecond), a.Matched, a.Total)
	}
	report("page 1 (50 leases, no filter)", func(i int) string { return fmt.Sprintf("/leases.json?limit=%d", 50+i) })
	report("deep page (cursor in the middle)", func(i int) string {
		return fmt.Sprintf("/leases.json?after_ns=bench&after_group=g10&after_name=lease-%07d", 50_000+i)
	})
	report("search by holder (substring)", func(i int) string { return fmt.Sprintf("/leases.json?holder=holder-%05d", 100+i) })
	report("search by name in one group", func(i int) string {
		return fmt.Sprintf("/leases.json?ns=bench&group=g%02d&name=lease-00%d", i, 10+i)
	})
	{
		d, _ := get("/")
		t.Logf("%-44s %v", "status page HTML", d.Round(10*time.Microsecond))
		d, _ = get("/lease?ns=bench&group=g07&name=lease-0000007")
		t.Logf("%-44s %v", "lease page", d.Round(10*time.Microsecond))
	}

	// Apply stall: claim latency of a steady load (8 workers, each its own
	// keys, one claim at a time) for 10 s per phase.
	phase := func(tag, name string, hammer bool) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var pages int
		var pmu sync.Mutex
		if hammer {
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						get(fmt.Sprintf("/leases.json?holder=holder-%d%04d", w, i%10000))
						pmu.Lock()
						pages++
						pmu.Unlock()
					}
				}()
			}
		}
		lat := claimLoad(t, ctx, cl, tag, 8, 10*time.Second)
		if len(lat) == 0 {
			t.Fatal("no claim answered")
		}
		close(stop)
		wg.Wait()
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond) }
		t.Logf("%-44s claims %5d  p50 %7v  p99 %7v  max %7v  (pages served %d)", name, len(lat), q(.5), q(.99), q(1), pages)
	}
	phase("quiet", "claims, no one on the page", false)
	phase("duty-on", "claims, page hammered (duty cycle on)", true)
	old := web.SetDutyRatio(0)
	phase("duty-off", "claims, page hammered (duty cycle off)", true)
	web.SetDutyRatio(old)
	phase("quiet-again", "claims, no one on the page (again)", false)
}

// claimLoad runs workers claim loops for d and returns each claim's latency.
func claimLoad(t *testing.T, ctx context.Context, cl *client.Client, tag string, workers int, d time.Duration) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				k := lease.Key{Namespace: "load", Group: tag, Name: fmt.Sprintf("w%d-%d", w, i)}
				t0 := time.Now()
				_, err := cl.Claim(ctx, k, "loader", time.Minute)
				el := time.Since(t0)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				lat = append(lat, el)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat
}
