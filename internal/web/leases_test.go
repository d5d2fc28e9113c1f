package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// machineBackend serves reads from a real state machine, as a replica does
// (under a lock), so the page's paging and filters run on real state.
type machineBackend struct {
	mu    sync.RWMutex
	m     *fsm.Machine
	idx   uint64
	reads int
}

func (b *machineBackend) Write(context.Context, []lease.Command) ([]lease.Result, error) {
	return nil, nil
}

func (b *machineBackend) Read(_ context.Context, _ bool, fn func(*fsm.Machine, time.Duration)) (grpcserver.ReadMeta, error) {
	b.mu.Lock()
	b.reads++
	b.mu.Unlock()
	b.mu.RLock()
	defer b.mu.RUnlock()
	fn(b.m, b.m.Now())
	return grpcserver.ReadMeta{AppliedIndex: b.m.Index(), Now: b.m.Now()}, nil
}

func (b *machineBackend) Status() grpcserver.Status {
	return grpcserver.Status{ID: "n1", State: "leader", LeaderID: "n1", Leases: b.m.Len()}
}

func (b *machineBackend) apply(at time.Duration, cmds ...lease.Command) []lease.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.idx++
	for i := range cmds {
		cmds[i].Deadline = time.Hour // a write's deadline in replicated time; 0 has passed
	}
	b.m.Apply(b.idx, &logentry.Entry{Kind: logentry.KindBatch, Time: at, Commands: cmds})
	return b.m.TakeEvents()
}

func newMachineBackend() *machineBackend {
	m := fsm.New()
	m.RecordEvents(true)
	return &machineBackend{m: m}
}

func claimCmd(ns, g, n, holder string) lease.Command {
	return lease.Command{Op: lease.OpClaim, Key: lease.Key{Namespace: ns, Group: g, Name: n}, Holder: holder, Duration: time.Minute}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestLeasesJSONFiltersAndPages(t *testing.T) {
	b := newMachineBackend()
	var cmds []lease.Command
	for i := 0; i < 120; i++ {
		cmds = append(cmds, claimCmd("prod", fmt.Sprintf("g%d", i%3), fmt.Sprintf("job-%03d", i), fmt.Sprintf("host-%d", i%7)))
	}
	cmds = append(cmds, claimCmd("dev", "g0", "job-x", "laptop"),
		lease.Command{Op: lease.OpPin, Key: lease.Key{Namespace: "dev", Group: "g0", Name: "job-x"}, Holder: "upgrade-bot"})
	b.apply(time.Second, cmds...)
	srv := httptest.NewServer(New(Options{Backend: b}))
	defer srv.Close()

	var p leasePage
	getJSON(t, srv.URL+"/leases.json?holder=laptop", &p)
	if p.Matched != 1 || p.Total != 121 || len(p.Leases) != 1 || p.Leases[0].Name != "job-x" ||
		strings.Join(p.Leases[0].PinnedBy, ",") != "upgrade-bot" || p.Leases[0].LeftMs != 60_000 {
		t.Fatalf("search by holder: %+v", p)
	}
	// Every page of prod/g1, followed by its cursor, lists each lease once, in order.
	var seen []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		url := srv.URL + "/leases.json?ns=prod&group=g1&limit=7"
		if after != "" {
			url += "&after_ns=prod&after_group=g1&after_name=" + after
		}
		var p leasePage
		getJSON(t, url, &p)
		if p.Matched != 40 {
			t.Fatalf("matched %d, want 40", p.Matched)
		}
		for _, l := range p.Leases {
			seen = append(seen, l.Name)
		}
		if !p.More {
			break
		}
		after = p.Leases[len(p.Leases)-1].Name
	}
	if len(seen) != 40 || seen[0] != "job-001" || seen[39] != "job-118" {
		t.Fatalf("pages gave %d leases: %v", len(seen), seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] >= seen[i] {
			t.Fatalf("out of order at %d: %v", i, seen)
		}
	}
}

// TestScannerDutyCycle checks that a hammered page neither rescans for an
// identical query within a second nor scans back to back.
func TestScannerDutyCycle(t *testing.T) {
	b := newMachineBackend()
	b.apply(time.Second, claimCmd("a", "b", "c", "h"))
	s := &scanner{b: b}
	q := fsm.PageQuery{Limit: 10}
	if _, err := s.page(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	first := b.reads
	for i := 0; i < 19; i++ {
		if _, err := s.page(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if b.reads != first {
		t.Fatalf("19 more identical queries read the state %d more times, want 0", b.reads-first)
	}
	s.nxt = time.Now().Add(time.Hour) // as if the last scan had been long
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.page(ctx, fsm.PageQuery{Limit: 10, Holder: "h"}); err == nil {
		t.Fatal("a new query scanned before the duty cycle allowed")
	}
}

func TestLeasePageShowsHistory(t *testing.T) {
	b := newMachineBackend()
	hub := grpcserver.NewWatchHub(0, 0)
	h := NewHistory(hub, 0)
	k := lease.Key{Namespace: "ns", Group: "g", Name: "leader"}
	hub.Publish(b.apply(time.Second, claimCmd("ns", "g", "leader", "alice")))
	hub.Publish(b.apply(2*time.Second, lease.Command{Op: lease.OpRevoke, Key: k, Holder: "alice"}))
	hub.Publish(b.apply(3*time.Second, claimCmd("ns", "g", "leader", "bob"), lease.Command{Op: lease.OpPin, Key: k, Holder: "ops"}))
	srv := httptest.NewServer(New(Options{Backend: b, History: h}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/lease?ns=ns&group=g&name=leader")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, want := range []string{`<td id="holder">bob</td>`, `<td id="pinned">ops </td>`,
		`<tr data-kind="claimed"><td>claimed</td><td>alice</td>`, `<tr data-kind="revoked">`, `<tr data-kind="pinned">`, "2s ago"} {
		if !strings.Contains(page, want) {
			t.Errorf("lease page lacks %s", want)
		}
	}
	var d leaseDetail
	getJSON(t, srv.URL+"/lease.json?ns=ns&group=g&name=gone", &d)
	if d.Held || len(d.History) != 0 {
		t.Fatalf("unknown lease: %+v", d)
	}
	if t.Failed() {
		t.Log(page)
	}
}

// TestChunkedPagesMatchOneRead checks the scanner's group-by-group pages
// (small chunks, so a page spans several reads) against fsm.Page over
// everything in one read, for filtered and unfiltered queries from many
// cursors; and that past maxChunkedGroups it falls back to one read.
func TestChunkedPagesMatchOneRead(t *testing.T) {
	b := newMachineBackend()
	var cmds []lease.Command
	for i := 0; i < 400; i++ {
		cmds = append(cmds, claimCmd(fmt.Sprintf("ns%d", i%2), fmt.Sprintf("g%d", i%9), fmt.Sprintf("n%03d", i%97), fmt.Sprintf("h%d", i%5)))
	}
	b.apply(time.Second, cmds...)
	oldChunk, oldMax := chunkLeases, maxChunkedGroups
	defer func() { chunkLeases, maxChunkedGroups = oldChunk, oldMax }()
	for _, mode := range []struct {
		chunk, maxGroups, minReads int
	}{{chunk: 30, maxGroups: 100, minReads: 3}, {chunk: 30, maxGroups: 5, minReads: 1}} {
		chunkLeases, maxChunkedGroups = mode.chunk, mode.maxGroups
		for _, q0 := range []fsm.PageQuery{{Limit: 13}, {Limit: 13, Holder: "h2"}, {Limit: 7, Namespace: "ns1"}, {Limit: 500},
			{Limit: 5, Name: "n05"}, {Limit: 4, Namespace: "ns0", Group: "g4"}} {
			q := q0
			for pages := 0; pages < 200; pages++ {
				s := &scanner{b: b}
				got, err := s.page(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				var want fsm.PageResult
				b.Read(context.Background(), true, func(m *fsm.Machine, at time.Duration) { want = m.Page(q, at) })
				var names, wantNames []string
				for _, l := range got.Leases {
					names = append(names, l.Namespace+"/"+l.Group+"/"+l.Name)
				}
				for _, in := range want.Leases {
					wantNames = append(wantNames, in.Key.String())
				}
				if strings.Join(names, " ") != strings.Join(wantNames, " ") || got.Matched != want.Matched || got.More != want.More {
					t.Fatalf("chunk %d %+v: got %d matched, more %v, %v\nwant %d matched, more %v, %v",
						mode.chunk, q, got.Matched, got.More, names, want.Matched, want.More, wantNames)
				}
				if mode.maxGroups == 100 && q.Namespace == "" && q.Limit == 500 && got.Reads < mode.minReads {
					t.Fatalf("a page over every lease took %d reads with %d-lease chunks", got.Reads, mode.chunk)
				}
				if !got.More {
					break
				}
				last := want.Leases[len(want.Leases)-1].Key
				q.After = last
			}
		}
	}
}
