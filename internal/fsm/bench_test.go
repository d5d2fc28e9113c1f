package fsm

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// A controller-like key space: 100 leases per model (group), holders are
// unit names.
func benchKey(i int) lease.Key {
	return lease.Key{Namespace: "application-leadership", Group: fmt.Sprintf("%08x-model", i/100), Name: fmt.Sprintf("app-%d", i)}
}

func benchHolder(i int) string { return fmt.Sprintf("app-%d/%d", i, i%3) }

// populate claims n leases of 60s through the codec, as a replica would.
func populate(tb testing.TB, n int) *Machine { return populateKeys(tb, n, benchKey) }

// populateKeys is populate with lease i at keyOf(i).
func populateKeys(tb testing.TB, n int, keyOf func(int) lease.Key) *Machine {
	m := New()
	e := logentry.Entry{Kind: logentry.KindBatch}
	idx := uint64(0)
	flush := func() {
		dec, err := logentry.Decode(e.Marshal())
		if err != nil {
			tb.Fatal(err)
		}
		idx++
		for _, r := range m.Apply(idx, &dec) {
			if r.Outcome != lease.OutcomeGranted {
				tb.Fatalf("populate: %+v", r)
			}
		}
		e.Commands = e.Commands[:0]
	}
	for i := 0; i < n; i++ {
		e.Commands = append(e.Commands, claim(keyOf(i), benchHolder(i), time.Minute))
		if len(e.Commands) == 1024 {
			flush()
		}
	}
	if len(e.Commands) > 0 {
		flush()
	}
	return m
}

const benchLeases = 100_000

// benchStream is a cycle of commands against populate(benchLeases): in each
// block of 100, 90 extends of held leases (spread over the key space), then
// 5 revokes and 5 re-claims of the same 5 keys, so the state stays the same
// size and every grant takes a new token.
func benchStream() []lease.Command {
	const n = 1 << 17 // a multiple of every batch size
	cmds := make([]lease.Command, 0, n)
	ext, churn := 0, 0
	for len(cmds) < n {
		for j := 0; j < 90 && len(cmds) < n; j++ {
			i := (ext * 7919) % benchLeases
			ext++
			cmds = append(cmds, extend(benchKey(i), benchHolder(i), time.Minute))
		}
		var keys []int
		for j := 0; j < 5; j++ {
			keys = append(keys, (churn*104729+50_000)%benchLeases)
			churn++
		}
		for _, i := range keys {
			if len(cmds) < n {
				cmds = append(cmds, revoke(benchKey(i), benchHolder(i)))
			}
		}
		for _, i := range keys {
			if len(cmds) < n {
				cmds = append(cmds, claim(benchKey(i), benchHolder(i), time.Minute))
			}
		}
	}
	return cmds
}

// BenchmarkApply measures the state machine's cost per command at several
// batch sizes, on 100k held leases with replicated time advancing 10µs per
// command (100k commands/s), so every lease is renewed long before expiry.
func BenchmarkApply(b *testing.B) {
	stream := benchStream()
	for _, c := range []struct {
		size   int
		window bool // record events as a server's watch window does
	}{{1, false}, {64, false}, {1024, false}, {1024, true}} {
		size := c.size
		name := fmt.Sprintf("batch=%d", size)
		if c.window {
			name += "/window"
		}
		b.Run(name, func(b *testing.B) {
			m := populate(b, benchLeases)
			m.RecordEvents(c.window)
			m.RecordExtends(false)
			var entries []logentry.Entry
			for i := 0; i < len(stream); i += size {
				entries = append(entries, logentry.Entry{Kind: logentry.KindBatch, Commands: stream[i : i+size]})
			}
			now, idx, bad := m.Now(), m.Index(), 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := &entries[i%len(entries)]
				now += time.Duration(size) * 10 * time.Microsecond
				idx++
				e.Time = now
				for _, r := range m.Apply(idx, e) {
					if r.Code != lease.CodeOK {
						bad++
					}
				}
				m.TakeEvents()
			}
			b.StopTimer()
			if m.Len() != benchLeases || bad > b.N*size/50 {
				b.Fatalf("stream drifted: %d leases, %d failed commands", m.Len(), bad)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/cmd")
		})
	}
}

// BenchmarkDecodeApply is what a replica pays per entry: decode the bytes,
// then apply.
func BenchmarkDecodeApply(b *testing.B) {
	stream := benchStream()
	for _, size := range []int{64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			m := populate(b, benchLeases)
			var encoded [][]byte
			for i := 0; i < len(stream); i += size {
				e := logentry.Entry{Kind: logentry.KindBatch, Commands: stream[i : i+size]}
				encoded = append(encoded, e.Marshal())
			}
			now, idx := m.Now(), m.Index()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e, err := logentry.Decode(encoded[i%len(encoded)])
				if err != nil {
					b.Fatal(err)
				}
				now += time.Duration(size) * 10 * time.Microsecond
				idx++
				e.Time = now // the encoded time is 0; stamp the entry as the leader would have
				m.Apply(idx, &e)
			}
			b.StopTimer()
			if m.Len() != benchLeases {
				b.Fatalf("%d leases", m.Len())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/cmd")
		})
	}
}

const bigLeases = 1_000_000

// BenchmarkMemoryPerLease reports the live heap per held lease at 1M leases
// (everything the machine keeps: records, group tables, expiry index,
// strings), in four shapes of key space: one group of 1M leases (as the e2e
// memory benchmark), 1M groups of one lease, Juju-like groups of 3 leases
// (a model's few applications), and populate's 100 leases per group. ns/op
// is the time to claim 1M leases through the codec.
func BenchmarkMemoryPerLease(b *testing.B) {
	shapes := []struct {
		name  string
		keyOf func(int) lease.Key
	}{
		{"groups=1", func(i int) lease.Key {
			return lease.Key{Namespace: "mem", Group: "units", Name: fmt.Sprintf("unit-%d", i)}
		}},
		{"leases-per-group=1", func(i int) lease.Key {
			return lease.Key{Namespace: "singular-controller", Group: fmt.Sprintf("%08x-model", i), Name: "controller"}
		}},
		{"leases-per-group=3", func(i int) lease.Key {
			return lease.Key{Namespace: "application-leadership", Group: fmt.Sprintf("%08x-model", i/3), Name: fmt.Sprintf("app-%d", i)}
		}},
		{"leases-per-group=100", benchKey},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			var perLease float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				m := populateKeys(b, bigLeases, sh.keyOf)
				runtime.GC()
				runtime.ReadMemStats(&after)
				perLease = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / bigLeases
				runtime.KeepAlive(m)
			}
			b.ReportMetric(perLease, "bytes/lease")
		})
	}
}

var (
	bigOnce sync.Once
	bigM    *Machine
	bigSnap []byte
)

func bigMachine(b *testing.B) (*Machine, []byte) {
	bigOnce.Do(func() {
		bigM = populate(b, bigLeases)
		// A few pins, as a controller has during upgrades.
		for i := 0; i < 1000; i++ {
			bigM.Apply(bigM.Index()+1, &logentry.Entry{Kind: logentry.KindBatch, Time: bigM.Now(),
				Commands: []lease.Command{pin(benchKey(i*997), "machine-0")}})
		}
		bigSnap = bigM.AppendSnapshot(nil)
	})
	return bigM, bigSnap
}

func BenchmarkAppendSnapshot1M(b *testing.B) {
	m, snap := bigMachine(b)
	buf := make([]byte, 0, len(snap))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = m.AppendSnapshot(buf[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms")
	b.ReportMetric(float64(len(buf)), "snapshot-bytes")
	b.ReportMetric(float64(len(buf))/bigLeases, "bytes/lease")
}

func BenchmarkRestore1M(b *testing.B) {
	_, snap := bigMachine(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := New()
		if err := m.Restore(snap); err != nil {
			b.Fatal(err)
		}
		if m.Len() != bigLeases {
			b.Fatalf("%d leases", m.Len())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms")
	b.ReportMetric(float64(len(snap)), "snapshot-bytes")
}
