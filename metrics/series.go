package metrics

import (
	"sync"
	"time"
)

// Point is one second of activity.
type Point struct {
	T         int64   `json:"t"` // unix seconds
	Ops       int     `json:"ops"`
	Errors    int     `json:"errors"`
	Rejects   int     `json:"rejects"`
	AvgMillis float64 `json:"avg_ms"`
	MaxMillis float64 `json:"max_ms"`
}

type bucket struct {
	sec                  int64
	ops, errors, rejects int
	sum, max             time.Duration
}

// Series keeps per-second counts for the last n seconds in a ring. Buckets
// are rolled lazily by the second they are written or read at, so it needs
// no goroutine.
type Series struct {
	mu sync.Mutex
	b  []bucket
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

// AddRejects records n ops rejected by admission at t.
func (s *Series) AddRejects(t time.Time, n int) {
	s.mu.Lock()
	s.at(t).rejects += n
	s.mu.Unlock()
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
			p.MaxMillis = float64(b.max) / 1e6
			if b.ops > 0 {
				p.AvgMillis = float64(b.sum) / float64(b.ops) / 1e6
			}
		}
		out = append(out, p)
	}
	return out
}
