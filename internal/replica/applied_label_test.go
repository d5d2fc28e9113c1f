package replica

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
)

// A read labels the state it saw with the applied index; the label must
// never be older than the state (a stale read of newer state under an older
// index made replicas look divergent at "the same" applied index, found by
// the fault suite's replica comparison under pause-leader).
func TestReadLabelNeverOlderThanState(t *testing.T) {
	s := newStateMachine()
	const n = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			e := logentry.Entry{Kind: logentry.KindBatch, Time: time.Duration(i) * time.Millisecond}
			s.ApplyBatch([]*raft.Log{{Index: i, Type: raft.LogCommand, Data: e.Marshal()}})
		}
	}()
	bad := 0
	var first string
	for {
		var state uint64
		label := s.readIndexed(func(m *fsm.Machine) { state = m.Index() })
		if label < state && bad == 0 {
			first = fmt.Sprintf("state at index %d labelled %d", state, label)
		}
		if label < state {
			bad++
		}
		if state == n {
			break
		}
	}
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d reads labelled older than the state they saw; first: %s", bad, first)
	}
}
