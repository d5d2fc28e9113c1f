package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ceilContractFields are the fields CLI.md fixes for each ceilings row.
var ceilContractFields = []string{"target", "op", "concurrency", "batch", "reps", "ops_per_sec",
	"ops_per_sec_min", "ops_per_sec_max", "p50_ms", "p99_ms", "server_cpu_us_per_op", "fsyncs_per_op",
	"max_rss_mb", "errors"}

// checkCeilRow returns what is wrong with one report.json ceilings row, for
// a clean run of reps repetitions.
func checkCeilRow(row map[string]any, reps int) []string {
	var bad []string
	for _, f := range ceilContractFields {
		if _, ok := row[f]; !ok {
			bad = append(bad, "missing "+f)
		}
	}
	num := func(f string) float64 { v, _ := row[f].(float64); return v }
	op, _ := row["op"].(string)
	if num("reps") != float64(reps) {
		bad = append(bad, fmt.Sprintf("reps %v, want %d", row["reps"], reps))
	}
	if num("concurrency") < 1 || num("batch") < 1 {
		bad = append(bad, "concurrency or batch below 1")
	}
	if num("ops_per_sec") <= 0 || num("ops_per_sec_min") > num("ops_per_sec") || num("ops_per_sec") > num("ops_per_sec_max") {
		bad = append(bad, fmt.Sprintf("goodput %v not within [%v, %v] or not positive", row["ops_per_sec"], row["ops_per_sec_min"], row["ops_per_sec_max"]))
	}
	if num("p50_ms") <= 0 || num("p99_ms") < num("p50_ms") {
		bad = append(bad, fmt.Sprintf("latency p50 %v p99 %v", row["p50_ms"], row["p99_ms"]))
	}
	if row["server_cpu_us_per_op"] == nil || num("server_cpu_us_per_op") <= 0 {
		bad = append(bad, fmt.Sprintf("server CPU per op %v", row["server_cpu_us_per_op"]))
	}
	// Every write goes through the log; etcd's keepalives never do.
	switch f := row["fsyncs_per_op"]; {
	case f == nil:
		bad = append(bad, "fsyncs_per_op not measured")
	case op != "extend" && op != "extend-stream" && num("fsyncs_per_op") <= 0:
		bad = append(bad, fmt.Sprintf("%s: fsyncs per op %v, want > 0", op, f))
	case row["target"] == "leasehold" && num("fsyncs_per_op") <= 0:
		bad = append(bad, fmt.Sprintf("leasehold %s: fsyncs per op %v, want > 0", op, f))
	}
	if num("max_rss_mb") <= 0 {
		bad = append(bad, "max RSS not measured")
	}
	if num("errors") != 0 {
		bad = append(bad, fmt.Sprintf("%v errors", row["errors"]))
	}
	if op == "expire" && (row["expiry_lag_p50_ms"] == nil || row["expiry_lag_p99_ms"] == nil) {
		bad = append(bad, "expire row without its lag")
	}
	return bad
}

// TestCheckCeilRowCatchesEachCounter plants a bad value in each counter of
// a good row: the check must fail on every one, so the tiny run below
// proves something.
func TestCheckCeilRowCatchesEachCounter(t *testing.T) {
	good := map[string]any{"target": "leasehold", "op": "claim", "concurrency": 3.0, "batch": 1.0, "reps": 1.0,
		"ops_per_sec": 100.0, "ops_per_sec_min": 90.0, "ops_per_sec_max": 110.0, "p50_ms": 1.0, "p99_ms": 3.0,
		"server_cpu_us_per_op": 200.0, "fsyncs_per_op": 1.5, "max_rss_mb": 60.0, "errors": 0.0}
	if bad := checkCeilRow(good, 1); len(bad) > 0 {
		t.Fatalf("good row rejected: %v", bad)
	}
	plant := map[string]any{
		"concurrency": 0.0, "batch": 0.0, "reps": 2.0, "ops_per_sec": 0.0, "ops_per_sec_min": 200.0,
		"ops_per_sec_max": 50.0, "p50_ms": 0.0, "p99_ms": 0.5, "server_cpu_us_per_op": nil,
		"fsyncs_per_op": 0.0, "max_rss_mb": 0.0, "errors": 4.0,
	}
	for f, v := range plant {
		row := maps.Clone(good)
		row[f] = v
		if len(checkCeilRow(row, 1)) == 0 {
			t.Errorf("planted %s=%v: not caught", f, v)
		}
		delete(row, f)
		if len(checkCeilRow(row, 1)) == 0 {
			t.Errorf("missing %s: not caught", f)
		}
	}
	null := maps.Clone(good)
	null["fsyncs_per_op"] = nil
	if len(checkCeilRow(null, 1)) == 0 {
		t.Errorf("null fsyncs_per_op not caught")
	}
	exp := maps.Clone(good)
	exp["op"] = "expire"
	if len(checkCeilRow(exp, 1)) == 0 {
		t.Errorf("expire row without lag not caught")
	}
}

// TestCeilingsTiny runs every op of the ceilings mode in a tiny size against
// Leasehold and etcd (servers in a child process, as the CLI runs them) and
// checks every row of report.json.
func TestCeilingsTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 14 clusters")
	}
	dir := t.TempDir()
	rep, err := RunCeilings(context.Background(), CeilOptions{
		Targets:     []string{"leasehold", "etcd"},
		Ops:         []string{"claim", "claim-contended", "extend", "revoke", "expire", "bulk-claim", "bulk-extend"},
		Concurrency: []int{3}, Batch: 16, Reps: 1, Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond,
		ExpireLeases: 60, ExpireTTL: 2 * time.Second, Out: dir, DataDir: t.TempDir(), ServerProcess: childProcess,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Ceilings []map[string]any `json:"ceilings"`
		Notes    []string         `json:"notes"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, row := range raw.Ceilings {
		name := fmt.Sprintf("%v %v", row["target"], row["op"])
		seen[name] = true
		if bad := checkCeilRow(row, 1); len(bad) > 0 {
			t.Errorf("%s: %v (notes %v)", name, bad, row["notes"])
		}
	}
	for _, want := range []string{"leasehold claim", "etcd claim", "leasehold claim-contended", "etcd claim-contended",
		"leasehold extend", "etcd extend", "leasehold extend-stream", "etcd extend-stream", "leasehold revoke", "etcd revoke",
		"leasehold expire", "etcd expire", "leasehold bulk-claim", "etcd bulk-claim", "leasehold bulk-extend"} {
		if !seen[want] {
			t.Errorf("no row for %s", want)
		}
	}
	if seen["etcd bulk-extend"] {
		t.Errorf("etcd has no bulk renewal, yet a row")
	}
	for _, r := range rep.Ceilings {
		if r.Op == "claim-contended" && r.Denied == 0 {
			t.Errorf("%s claim-contended: no denials with 3 workers per key", r.Target)
		}
		if r.Op == "bulk-claim" && r.Target == "etcd" && r.Batch != 16 {
			t.Errorf("etcd bulk batch %d", r.Batch)
		}
	}
	for _, f := range []string{"report.md", "claim-throughput.png", "claim-latency.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing: %v", f, err)
		}
	}
}

// TestCeilAggregate: the median and range over reps.
func TestCeilAggregate(t *testing.T) {
	cpu := []float64{100, 300, 200}
	var ss []ceilSample
	for i, v := range []float64{30, 10, 20} {
		ss = append(ss, ceilSample{OpsPerSec: v, P99Ms: v / 10, ServerCPUUs: &cpu[i], MaxRSSMB: v})
	}
	row := aggregate(ceilKey{"x", "claim", 10, 1, 0}, ss)
	if row.OpsPerSec != 20 || row.OpsPerSecMin != 10 || row.OpsPerSecMax != 30 || row.Reps != 3 || row.P99Ms != 2 {
		t.Errorf("aggregate: %+v", row)
	}
	if row.ServerCPUUsPerOp == nil || *row.ServerCPUUsPerOp != 200 || row.FsyncsPerOp != nil || row.MaxRSSMB != 30 {
		t.Errorf("aggregate pointers: cpu %v fsyncs %v rss %v", row.ServerCPUUsPerOp, row.FsyncsPerOp, row.MaxRSSMB)
	}
}

// TestSaturationTiny: an open-loop sweep of two rates on both targets; the
// rows carry their offered rate and each (target, op) gets a knee.
func TestSaturationTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 clusters")
	}
	dir := t.TempDir()
	rep, err := RunCeilings(context.Background(), CeilOptions{
		Targets: []string{"leasehold", "etcd"}, Ops: []string{"claim"}, Concurrency: []int{20},
		Rates: []float64{20, 100}, Reps: 1, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
		P99Bound: 2 * time.Second, Out: dir, DataDir: t.TempDir(), ServerProcess: childProcess,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	var raw struct {
		Scenario string           `json:"scenario"`
		Ceilings []map[string]any `json:"ceilings"`
		Knees    []map[string]any `json:"knees"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Scenario != "saturation" || len(raw.Ceilings) != 4 || len(raw.Knees) != 2 {
		t.Fatalf("scenario %q, %d rows, %d knees", raw.Scenario, len(raw.Ceilings), len(raw.Knees))
	}
	for _, row := range raw.Ceilings {
		if bad := checkCeilRow(row, 1); len(bad) > 0 {
			t.Errorf("%v %v: %v", row["target"], row["offered_rate"], bad)
		}
		// An open loop offers what it offers: the achieved rate is near it
		// (loose: a tiny window on a shared machine).
		if off, got := row["offered_rate"].(float64), row["ops_per_sec"].(float64); got > 1.5*off || got < 0.3*off {
			t.Errorf("%v: offered %v, achieved %v", row["target"], off, got)
		}
	}
	for _, k := range rep.Knees {
		if k.OfferedRate != 100 {
			t.Errorf("%s knee at %v with a 2 s p99 bound, want 100", k.Target, k.OfferedRate)
		}
	}
}

// TestKneeCatchesEachCondition: a rate with errors, a p99 over the bound or
// a shortfall in achieved rate is not the knee.
func TestKneeCatchesEachCondition(t *testing.T) {
	row := func(rate, ops, p99 float64, errs uint64) CeilRow {
		return CeilRow{Target: "x", Op: "claim", Batch: 1, OfferedRate: rate, OpsPerSec: ops, P99Ms: p99, Errors: errs}
	}
	for name, bad := range map[string]CeilRow{
		"errors": row(400, 400, 10, 1), "p99": row(400, 400, 150, 0), "shortfall": row(400, 300, 10, 0),
	} {
		r := &CeilReport{Scenario: "saturation", Ceilings: []CeilRow{row(100, 100, 10, 0), row(200, 199, 20, 0), bad}}
		r.finish(100 * time.Millisecond)
		if len(r.Knees) != 1 || r.Knees[0].OfferedRate != 200 {
			t.Errorf("%s: knees %+v, want 200", name, r.Knees)
		}
	}
}
