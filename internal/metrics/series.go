package metrics

import (
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/admission"
)

// Point is one second of activity, as the status page charts it.
type Point struct {
	T         int64   `json:"t"` // unix seconds
	Ops       int     `json:"ops"`
	Errors    int     `json:"errors"`
	Rejects   int     `json:"rejects"`
	AvgMillis float64 `json:"avg_ms"`
	MaxMillis float64 `json:"max_ms"`

	// Admission queue: the deepest it got (both lanes), entries proposed
	// and their mean ops, rejects by reason, the longest retry-after told.
	QueueMax      int            `json:"queue_max"`
	Entries       int            `json:"entries"`
	OpsPerEntry   float64        `json:"ops_per_entry"`
	RejectsBy     map[string]int `json:"rejects_by,omitempty"`
	RetryAfterMax float64        `json:"retry_after_max_ms"`

	// Commit (proposal to result) and fsync (one log append) latency.
	CommitAvg float64 `json:"commit_avg_ms"`
	CommitMax float64 `json:"commit_max_ms"`
	FsyncAvg  float64 `json:"fsync_avg_ms"`
	FsyncMax  float64 `json:"fsync_max_ms"`

	// Replicated is the replicated clock (seconds) sampled in this second;
	// HasReplicated is false for a second without a sample.
	Replicated    float64 `json:"replicated_s"`
	HasReplicated bool    `json:"has_replicated"`
	LeaderChanges int     `json:"leader_changes"`
}

type bucket struct {
	sec                  int64
	ops, errors, rejects int
	sum, max             time.Duration

	queueMax        int
	entries, entOps int
	rejectsBy       [4]int // by admission.Reason
	retryMax        time.Duration
	commits, fsyncs int
	commitSum, cMax time.Duration
	fsyncSum, fMax  time.Duration
	replicated      time.Duration
	hasReplicated   bool
	leaderChanges   int
}

// Series keeps per-second counts for the last n seconds in a ring. Buckets
// are rolled lazily by the second they are written or read at, so it needs
// no goroutine.
type Series struct {
	mu    sync.Mutex
	b     []bucket
	depth [2]int // current depth per lane
}

// NewSeries keeps n seconds.
func NewSeries(n int) *Series { return &Series{b: make([]bucket, n)} }

func (s *Series) at(t time.Time) *bucket {
	sec := t.Unix()
	b := &s.b[int(sec%int64(len(s.b)))]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	return b
}

// AddOp records one call that started at start and took d.
func (s *Series) AddOp(start time.Time, d time.Duration, ok bool) {
	s.mu.Lock()
	b := s.at(start.Add(d))
	b.ops++
	if !ok {
		b.errors++
	}
	b.sum += d
	b.max = max(b.max, d)
	s.mu.Unlock()
}

// AddRejects records n ops rejected by admission at t (reason unknown).
func (s *Series) AddRejects(t time.Time, n int) {
	s.mu.Lock()
	s.at(t).rejects += n
	s.mu.Unlock()
}

// AddRejectsReason records n ops rejected at t for reason r.
func (s *Series) AddRejectsReason(t time.Time, r admission.Reason, n int) {
	s.mu.Lock()
	b := s.at(t)
	b.rejects += n
	if int(r) < len(b.rejectsBy) {
		b.rejectsBy[r] += n
	}
	s.mu.Unlock()
}

// SetDepth records lane l's queue depth at t.
func (s *Series) SetDepth(t time.Time, l admission.Lane, d int) {
	s.mu.Lock()
	if int(l) < len(s.depth) {
		s.depth[l] = d
	}
	b := s.at(t)
	b.queueMax = max(b.queueMax, s.depth[0]+s.depth[1])
	s.mu.Unlock()
}

// AddEntry records a proposed entry of ops ops.
func (s *Series) AddEntry(t time.Time, ops int) {
	s.mu.Lock()
	b := s.at(t)
	b.entries++
	b.entOps += ops
	s.mu.Unlock()
}

// AddRetryAfter records a retry-after told to a refused call.
func (s *Series) AddRetryAfter(t time.Time, d time.Duration) {
	s.mu.Lock()
	b := s.at(t)
	b.retryMax = max(b.retryMax, d)
	s.mu.Unlock()
}

// AddCommit records an entry's proposal-to-result latency.
func (s *Series) AddCommit(t time.Time, d time.Duration) {
	s.mu.Lock()
	b := s.at(t)
	b.commits++
	b.commitSum += d
	b.cMax = max(b.cMax, d)
	s.mu.Unlock()
}

// AddFsync records one log append's latency.
func (s *Series) AddFsync(t time.Time, d time.Duration) {
	s.mu.Lock()
	b := s.at(t)
	b.fsyncs++
	b.fsyncSum += d
	b.fMax = max(b.fMax, d)
	s.mu.Unlock()
}

// SetReplicated samples the replicated clock at wall time t.
func (s *Series) SetReplicated(t time.Time, replicated time.Duration) {
	s.mu.Lock()
	b := s.at(t)
	b.replicated, b.hasReplicated = replicated, true
	s.mu.Unlock()
}

// AddLeaderChange records a leader change seen at t.
func (s *Series) AddLeaderChange(t time.Time) {
	s.mu.Lock()
	s.at(t).leaderChanges++
	s.mu.Unlock()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func avg(sum time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return ms(sum) / float64(n)
}

// Last returns the seconds up to now (excluded: it is still filling), oldest
// first, with empty seconds as zero points.
func (s *Series) Last(now time.Time, n int) []Point {
	n = min(n, len(s.b)-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Point, 0, n)
	cur := now.Unix()
	for sec := cur - int64(n); sec < cur; sec++ {
		p := Point{T: sec}
		if b := s.b[int(sec%int64(len(s.b)))]; b.sec == sec {
			p.Ops, p.Errors, p.Rejects = b.ops, b.errors, b.rejects
			p.MaxMillis = ms(b.max)
			p.AvgMillis = avg(b.sum, b.ops)
			p.QueueMax, p.Entries = b.queueMax, b.entries
			if b.entries > 0 {
				p.OpsPerEntry = float64(b.entOps) / float64(b.entries)
			}
			for r, c := range b.rejectsBy {
				if c > 0 {
					if p.RejectsBy == nil {
						p.RejectsBy = map[string]int{}
					}
					p.RejectsBy[admission.Reason(r).String()] = c
				}
			}
			p.RetryAfterMax = ms(b.retryMax)
			p.CommitAvg, p.CommitMax = avg(b.commitSum, b.commits), ms(b.cMax)
			p.FsyncAvg, p.FsyncMax = avg(b.fsyncSum, b.fsyncs), ms(b.fMax)
			p.Replicated, p.HasReplicated = b.replicated.Seconds(), b.hasReplicated
			p.LeaderChanges = b.leaderChanges
		}
		out = append(out, p)
	}
	return out
}
