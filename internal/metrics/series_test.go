package metrics

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/admission"
)

// TestSeriesHealth feeds one second of each health signal and reads it back
// as the status page does.
func TestSeriesHealth(t *testing.T) {
	s := NewSeries(10)
	at := time.Unix(1000, 0)
	s.SetDepth(at, admission.LaneClaim, 7)
	s.SetDepth(at, admission.LaneRenewal, 3)
	s.SetDepth(at, admission.LaneClaim, 0)
	s.AddEntry(at, 10)
	s.AddEntry(at, 30)
	s.AddRejectsReason(at, admission.ReasonQueueFull, 4)
	s.AddRejectsReason(at, admission.ReasonOverloaded, 1)
	s.AddRetryAfter(at, 250*time.Millisecond)
	s.AddRetryAfter(at, 50*time.Millisecond)
	s.AddCommit(at, 2*time.Millisecond)
	s.AddCommit(at, 4*time.Millisecond)
	s.AddFsync(at, time.Millisecond)
	s.SetReplicated(at, 42*time.Second)
	s.AddLeaderChange(at)
	pts := s.Last(at.Add(time.Second), 2)
	p := pts[len(pts)-1]
	if p.T != 1000 || p.QueueMax != 10 || p.Entries != 2 || p.OpsPerEntry != 20 || p.Rejects != 5 ||
		p.RejectsBy["queue_full"] != 4 || p.RejectsBy["overloaded"] != 1 || p.RetryAfterMax != 250 ||
		p.CommitAvg != 3 || p.CommitMax != 4 || p.FsyncAvg != 1 || !p.HasReplicated || p.Replicated != 42 || p.LeaderChanges != 1 {
		t.Fatalf("point %+v", p)
	}
	if q := pts[0]; q.HasReplicated || q.QueueMax != 0 || q.RejectsBy != nil {
		t.Fatalf("empty second %+v", q)
	}
}

// TestWrapLogStoreTimesAppends counts each StoreLogs (one fsync) once.
func TestWrapLogStoreTimesAppends(t *testing.T) {
	m := New(nil)
	defer m.Close()
	st := m.WrapLogStore(raft.NewInmemStore())
	if err := st.StoreLogs([]*raft.Log{{Index: 1}, {Index: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := st.StoreLog(&raft.Log{Index: 3}); err != nil {
		t.Fatal(err)
	}
	mfs, _ := m.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "leasehold_fsync_seconds" {
			if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c != 2 {
				t.Fatalf("%d fsyncs timed, want 2", c)
			}
			return
		}
	}
	t.Fatal("no leasehold_fsync_seconds")
}
