package boltstore

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// BenchmarkStoreLogs compares one Raft group commit (64 entries of 16 KiB,
// the leader's MaxAppendEntries batch of full entries) on this store and on
// raft-wal v0.4.0, the store it replaced, both fsyncing into t.TempDir():
//
//	go test ./raftnode/boltstore -run '^$' -bench StoreLogs -benchtime 200x
//
// The 256 B size is closer to a typical Leasehold entry (a batch of a few
// lease commands).
func BenchmarkStoreLogs(b *testing.B) {
	for _, size := range []int{16 << 10, 256} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchStoreLogs(b, size) })
	}
}

func benchStoreLogs(b *testing.B, size int) {
	const batch = 64
	run := func(b *testing.B, s raft.LogStore) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 31)
		}
		logs := make([]*raft.Log, batch)
		for i := range logs {
			logs[i] = &raft.Log{Type: raft.LogCommand, Term: 1, Data: data, AppendedAt: time.Now()}
		}
		b.SetBytes(int64(batch * size))
		b.ReportAllocs()
		next := uint64(1)
		b.ResetTimer()
		for range b.N {
			for _, l := range logs {
				l.Index = next
				next++
			}
			if err := s.StoreLogs(logs); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("bolt", func(b *testing.B) {
		s, _ := openTemp(b)
		run(b, s)
	})
	b.Run("raft-wal", func(b *testing.B) {
		dir := b.TempDir()
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(filepath.Join(dir), wal.WithMetaStore(meta))
		if err != nil {
			b.Fatal(err)
		}
		// raft-wal v0.4.0's Close leaves the meta store open.
		b.Cleanup(func() { w.Close(); meta.Close() })
		run(b, w)
	})
}
