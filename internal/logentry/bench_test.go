package logentry

import (
	"fmt"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// benchBatch is a realistic 1024-command batch: a controller's bulk extends,
// runs of commands in one model, some claims and revokes.
func benchBatch(n int) *Entry {
	e := &Entry{Kind: KindBatch, Time: 1234 * time.Second}
	for i := 0; i < n; i++ {
		op := lease.OpExtend
		switch i % 10 {
		case 7:
			op = lease.OpClaim
		case 9:
			op = lease.OpRevoke
		}
		e.Commands = append(e.Commands, lease.Command{
			Op:       op,
			Key:      lease.Key{Namespace: "application-leadership", Group: fmt.Sprintf("model-%08d", i/16), Name: fmt.Sprintf("app-%d", i)},
			Holder:   fmt.Sprintf("app-%d/%d", i, i%3),
			Duration: time.Minute,
			Deadline: e.Time + 5*time.Second,
		})
	}
	return e
}

func BenchmarkMarshal1024(b *testing.B) {
	e := benchBatch(1024)
	buf := e.Marshal()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Append(buf[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/cmd")
}

func BenchmarkDecode1024(b *testing.B) {
	e := benchBatch(1024)
	buf := e.Marshal()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/cmd")
	b.ReportMetric(float64(len(buf))/1024, "bytes/cmd")
}
