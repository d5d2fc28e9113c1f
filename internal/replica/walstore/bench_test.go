package walstore

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/replica/boltstore"
)

// BenchmarkStoreLogs compares one StoreLogs call on walstore and on
// boltstore, both fsyncing into b.TempDir(): a single 256 B entry (a
// one-client write) and a group commit of 64 (Raft's MaxAppendEntries).
//
//	go test ./raftnode/walstore -run '^$' -bench StoreLogs -benchtime 2000x
func BenchmarkStoreLogs(b *testing.B) {
	for _, batch := range []int{1, 64} {
		for _, store := range []string{"wal", "bolt"} {
			b.Run(fmt.Sprintf("%s/batch=%d", store, batch), func(b *testing.B) {
				var s raft.LogStore
				switch store {
				case "wal":
					w, err := Open(filepath.Join(b.TempDir(), "log"), Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { w.Close() })
					s = w
				case "bolt":
					bs, err := boltstore.Open(filepath.Join(b.TempDir(), "raft.db"))
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { bs.Close() })
					s = bs
				}
				data := make([]byte, 256)
				logs := make([]*raft.Log, batch)
				for i := range logs {
					logs[i] = &raft.Log{Type: raft.LogCommand, Term: 1, Data: data, AppendedAt: time.Now()}
				}
				next := uint64(1)
				b.ReportAllocs()
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
			})
		}
	}
}
