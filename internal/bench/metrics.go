package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// hist is a log-linear latency histogram in nanoseconds (HDR-like): 32
// sub-buckets per power of two, so any quantile is within ~3 % of the true
// value, in fixed memory (11 KiB) whatever the number of samples.
type hist struct {
	counts [histOctaves * histSub]uint64
	n      uint64
	max    time.Duration
	sum    time.Duration
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histOctaves = 44 // up to 2^44 ns, about 4.9 hours
)

func histIndex(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	e := bits.Len64(ns) - histSubBits // >= 1
	idx := e*histSub + int(ns>>uint(e-1)) - histSub
	return min(idx, histOctaves*histSub-1)
}

// histUpper is the largest value (ns) that lands in bucket idx.
func histUpper(idx int) uint64 {
	if idx < histSub {
		return uint64(idx)
	}
	e := idx / histSub
	m := uint64(idx%histSub + histSub)
	return (m+1)<<uint(e-1) - 1
}

func (h *hist) add(d time.Duration) {
	h.counts[histIndex(uint64(max(d, 0)))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0..1), never above the observed max.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histUpper(i)), h.max)
		}
	}
	return h.max
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// second is one second of the run as the clients saw it.
type second struct {
	ops     uint64
	rejects uint64 // overloaded + deadline_exceeded
	errors  uint64
	lat     hist
	// filled by the sampler
	queueDepth    int
	hasQueueDepth bool
}

// recorder collects every agent's calls: it feeds them to the correctness
// checker and keeps per-op histograms, counters by result code and
// per-second series.
type recorder struct {
	start time.Time
	check *checker // locks on its own: the calls are checked outside mu

	mu      sync.Mutex
	byOp    [numOpKinds]hist
	codes   [numOpKinds]map[lease.Code]uint64
	seconds []*second
	lastEnd time.Duration
}

func newRecorder(start time.Time) *recorder {
	r := &recorder{start: start, check: newChecker()}
	for i := range r.codes {
		r.codes[i] = map[lease.Code]uint64{}
	}
	return r
}

// since is the monotonic offset of t from the start of the run.
func (r *recorder) since(t time.Time) time.Duration { return t.Sub(r.start) }

func (r *recorder) secondAt(d time.Duration) *second {
	i := int(max(d, 0) / time.Second)
	for len(r.seconds) <= i {
		r.seconds = append(r.seconds, &second{})
	}
	return r.seconds[i]
}

func (r *recorder) add(rec Record) {
	r.check.add(rec)
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := rec.End - rec.Start
	r.byOp[rec.Op].add(lat)
	r.codes[rec.Op][rec.Code]++
	s := r.secondAt(rec.End)
	s.ops++
	s.lat.add(lat)
	switch {
	case isReject(rec.Code):
		s.rejects++
	case isError(rec.Code):
		s.errors++
	}
	r.lastEnd = max(r.lastEnd, rec.End)
}

func (r *recorder) sampleQueue(at time.Duration, depth int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.secondAt(at)
	s.queueDepth = max(s.queueDepth, depth)
	s.hasQueueDepth = true
}

// isReject: the service pushed back and did not apply the op.
func isReject(c lease.Code) bool {
	return c == lease.CodeOverloaded || c == lease.CodeDeadlineExceeded
}

// isError: a failure that is neither a normal lease answer (ok, denied,
// not_held) nor a reject.
func isError(c lease.Code) bool {
	switch c {
	case lease.CodeOK, lease.CodeDenied, lease.CodeNotHeld:
		return false
	}
	return !isReject(c)
}
