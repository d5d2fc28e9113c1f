package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// TestPageMatchesList pages through random states with random filters and
// page sizes and checks the pages, joined, are exactly List filtered the
// same way (List sorts everything: the reference).
func TestPageMatchesList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		m := New()
		var cmds []lease.Command
		for i := 0; i < 300; i++ {
			k := key(fmt.Sprintf("ns%d", rng.IntN(3)), fmt.Sprintf("g%d", rng.IntN(4)), fmt.Sprintf("n%03d", rng.IntN(120)))
			d := time.Duration(1+rng.IntN(20)) * time.Second
			switch rng.IntN(6) {
			case 0:
				cmds = append(cmds, revoke(k, fmt.Sprintf("h%d", rng.IntN(5))))
			case 1:
				cmds = append(cmds, pin(k, "ops"))
			default:
				cmds = append(cmds, claim(k, fmt.Sprintf("h%d", rng.IntN(5)), d))
			}
		}
		m.Apply(1, &logentry.Entry{Kind: logentry.KindBatch, Time: time.Second, Commands: cmds})
		// Some leases have expired by at but no entry has expired them
		// yet (and pinned ones stay): Page must hide the same ones as List.
		at := time.Duration(1+rng.IntN(15)) * time.Second
		q := PageQuery{Limit: 1 + rng.IntN(30)}
		switch rng.IntN(5) {
		case 0:
			q.Namespace = "ns1"
		case 1:
			q.Namespace, q.Group = "ns2", "g3"
		case 2:
			q.Holder = "h3"
		case 3:
			q.Name = "n0"
		}
		var want []lease.Info
		for _, in := range m.List(q.Namespace, q.Group, lease.Key{}, 0, at) {
			if strings.Contains(in.Key.Name, q.Name) && strings.Contains(in.Holder, q.Holder) {
				want = append(want, in)
			}
		}
		var got []lease.Info
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("round %d: paging does not end", round)
			}
			p := m.Page(q, at)
			if p.Matched != len(want) {
				t.Fatalf("round %d: matched %d, want %d", round, p.Matched, len(want))
			}
			got = append(got, p.Leases...)
			if !p.More {
				break
			}
			if len(p.Leases) != q.Limit {
				t.Fatalf("round %d: short page (%d of %d) with more to come", round, len(p.Leases), q.Limit)
			}
			q.After = p.Leases[len(p.Leases)-1].Key
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (%+v): pages\n%v\nwant\n%v", round, q, got, want)
		}
	}
}

func TestPinnedBy(t *testing.T) {
	h := newHarness(t)
	k := key("ns", "g", "a")
	h.apply(time.Second, claim(k, "x", time.Second), pin(k, "zed"), pin(k, "amy"))
	if got := h.m.PinnedBy(k); !slices.Equal(got, []string{"amy", "zed"}) {
		t.Fatalf("PinnedBy = %v", got)
	}
	if got := h.m.PinnedBy(key("ns", "g", "b")); got != nil {
		t.Fatalf("PinnedBy(unpinned) = %v", got)
	}
}

// BenchmarkPage is one page of 50 from the middle of a million leases in
// one group, unfiltered and filtered by holder.
func BenchmarkPage(b *testing.B) {
	m := New()
	const n = 1_000_000
	for start := 0; start < n; start += 10_000 {
		cmds := make([]lease.Command, 0, 10_000)
		for i := start; i < start+10_000; i++ {
			cmds = append(cmds, claim(key("ns", "g", fmt.Sprintf("lease-%07d", i)), fmt.Sprintf("holder-%d", i%1000), time.Minute))
		}
		m.Apply(uint64(start/10_000+1), &logentry.Entry{Kind: logentry.KindBatch, Time: time.Second, Commands: cmds})
	}
	for _, q := range []PageQuery{
		{Limit: 50, After: key("ns", "g", "lease-0500000")},
		{Limit: 50, Holder: "holder-77"},
	} {
		b.Run(fmt.Sprintf("holder=%q", q.Holder), func(b *testing.B) {
			for b.Loop() {
				if p := m.Page(q, time.Second); len(p.Leases) != 50 {
					b.Fatalf("%d leases", len(p.Leases))
				}
			}
		})
	}
}

func TestGroups(t *testing.T) {
	h := newHarness(t)
	h.apply(time.Second, claim(key("b", "y", "1"), "h", time.Minute), claim(key("a", "z", "1"), "h", time.Minute),
		claim(key("a", "x", "1"), "h", time.Minute), claim(key("a", "x", "2"), "h", time.Minute), claim(key("b", "x", "1"), "h", time.Minute))
	gs, ok := h.m.Groups("", "", lease.Key{}, 10)
	if got := fmt.Sprint(gs); !ok || got != "[{a x 2} {a z 1} {b x 1} {b y 1}]" {
		t.Fatalf("Groups = %s %v", got, ok)
	}
	if gs, _ := h.m.Groups("", "", key("a", "z", "9"), 10); fmt.Sprint(gs) != "[{a z 1} {b x 1} {b y 1}]" {
		t.Fatalf("Groups from a/z = %v", gs)
	}
	if gs, _ := h.m.Groups("b", "", lease.Key{}, 10); fmt.Sprint(gs) != "[{b x 1} {b y 1}]" {
		t.Fatalf("Groups(b) = %v", gs)
	}
	if gs, ok := h.m.Groups("", "", lease.Key{}, 3); ok || gs != nil {
		t.Fatalf("Groups past max = %v %v", gs, ok)
	}
}
