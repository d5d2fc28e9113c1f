package bench

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultMaxInFlight bounds the calls the generator has in flight at once
// (Options.MaxInFlight, --max-in-flight).
const DefaultMaxInFlight = 4096

// scheduler drives every agent of a run from one dispatcher goroutine.
// Agents wait in a heap keyed by the time of their next call; when one is
// due the dispatcher starts its call in a goroutine of its own and takes the
// agent back, through done, when the call has been answered and recorded.
// So an agent has at most one call in flight (which the online checker
// relies on), an idle agent costs its struct and a heap entry, and the
// goroutines alive are the calls in flight, at most maxInFlight.
//
// When maxInFlight calls are in flight the dispatcher waits for one to
// finish (a receive on done, not a sleep) and the due agents wait with it:
// the lag (how late each call started relative to its agent's schedule) and
// the time spent at the bound say whether the generator kept up.
type scheduler struct {
	h           *harness
	agents      []agent
	q           agentHeap
	done        chan int32 // agents whose call came back; capacity maxInFlight, so a call never blocks on it
	maxInFlight int
	epoch       uint32 // herds so far

	// Read after run returns.
	lag          hist          // call start time minus scheduled time
	maxSeen      int           // most calls in flight at once
	atBound      time.Duration // time with due agents held back by the bound
	abortedCalls int           // calls cut short by an abort (not recorded)
}

// heapEntry carries the due time beside the index so that sifting does not
// touch the agents themselves (1.2M of them, out of cache).
type heapEntry struct {
	when time.Duration // run offset
	idx  int32
}

// agentHeap is a binary min-heap by when, written out rather than through
// container/heap to keep entries unboxed.
type agentHeap []heapEntry

func (q *agentHeap) push(e heapEntry) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= h[i].when {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (q *agentHeap) pop() heapEntry {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	*q = h[:n]
	q.down(0)
	return top
}

func (q agentHeap) down(i int) {
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q[r].when < q[l].when {
			m = r
		}
		if q[i].when <= q[m].when {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

func (q agentHeap) init() {
	for i := len(q)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

// newScheduler makes the agents: cfg.Leases x cfg.Claimants claimants
// starting spread over the ramp, then (burst scenario) the burst claimants
// starting at eventAt.
func newScheduler(h *harness, salt uint64, eventAt time.Duration, maxInFlight int) *scheduler {
	cfg := &h.cfg
	n := cfg.Leases * cfg.Claimants
	h.base = int32(n)
	if cfg.Scenario == "burst" {
		n += cfg.Leases * cfg.BurstClaimants
	}
	s := &scheduler{h: h, agents: make([]agent, n), q: make(agentHeap, n),
		done: make(chan int32, maxInFlight), maxInFlight: maxInFlight}
	for i := range s.agents {
		a := &s.agents[i]
		a.id = int32(i)
		if a.id < h.base {
			a.key = a.id / int32(cfg.Claimants)
		} else {
			a.key = (a.id - h.base) / int32(cfg.BurstClaimants)
		}
		a.pcg.Seed(cfg.Seed, uint64(i)<<8|salt)
		when := eventAt
		if a.id < h.base {
			// The old generator's first draw (rand.Rand.Int64N on the same
			// PCG), so that a seed gives the same start schedule as before.
			when = time.Duration(rand.New(&a.pcg).Int64N(int64(cfg.Ramp) + 1))
		}
		s.q[i] = heapEntry{when: when, idx: a.id}
	}
	s.q.init()
	return s
}

// run drives the agents until stop is closed, then waits for the calls in
// flight (each bounded by OpTimeout) and returns. herd, when closed,
// restarts every agent at once.
func (s *scheduler) run(stop, herd <-chan struct{}) {
	cfg := &s.h.cfg
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	inFlight, stopping := 0, false
	var boundSince time.Time // when due agents began to wait for the bound; zero: they do not
	for {
		now := s.h.rec.since(time.Now())
		for !stopping && inFlight < s.maxInFlight && len(s.q) > 0 && s.q[0].when <= now {
			e := s.q.pop()
			s.lag.add(now - e.when)
			a := &s.agents[e.idx]
			a.op = a.nextOp(cfg)
			inFlight++
			s.maxSeen = max(s.maxSeen, inFlight)
			go func() {
				if !s.h.call(a) {
					a.op = numOpKinds // aborted: see below
				}
				s.done <- e.idx
			}()
			now = s.h.rec.since(time.Now())
		}
		if stopping && inFlight == 0 {
			return
		}
		var wake <-chan time.Time
		switch {
		case stopping || len(s.q) == 0:
		case s.q[0].when > now:
			// Also at the bound, so that the wait for it is timed from
			// when an agent falls due.
			timer.Reset(s.q[0].when - now)
			wake = timer.C
		case boundSince.IsZero():
			boundSince = time.Now() // due, not started: the bound holds it back
		}
		select {
		case i := <-s.done:
			inFlight--
			if !boundSince.IsZero() {
				s.atBound += time.Since(boundSince)
				boundSince = time.Time{}
			}
			a := &s.agents[i]
			if a.op == numOpKinds {
				s.abortedCalls++
				continue // the run is being aborted: the agent is done
			}
			if stopping {
				continue
			}
			when := a.answered(cfg)
			if a.epoch != s.epoch { // a herd came while this call was in flight
				a.epoch = s.epoch
				a.restart()
				when = a.end
			}
			s.q.push(heapEntry{when: when, idx: i})
		case <-wake:
		case <-herd:
			herd = nil
			s.herdNow(now)
		case <-stop:
			stop, stopping = nil, true
		}
	}
}

// herdNow restarts every agent: those waiting are due at once; those with a
// call in flight restart when it comes back (their epoch is behind).
func (s *scheduler) herdNow(now time.Duration) {
	s.epoch++
	for i := range s.q {
		a := &s.agents[s.q[i].idx]
		a.epoch = s.epoch
		a.restart()
		s.q[i].when = now // all equal: still a heap
	}
}

// setGenerator fills in the generator's figures: its lag and in-flight
// counts, the harness process's CPU over the load and peak RSS, and the
// server process's CPU over the load (serverOK false: they run in-process).
func (r *Result) setGenerator(s *scheduler, gen0, gen1 usage, serverCPU time.Duration, serverOK bool) {
	r.GenLagP50Ms, r.GenLagP99Ms, r.GenLagMaxMs = ms(s.lag.quantile(.5)), ms(s.lag.quantile(.99)), ms(s.lag.max)
	r.MaxInFlightSeen, r.GenAtBoundS = s.maxSeen, s.atBound.Seconds()
	r.GenCPUS = (gen1.cpu - gen0.cpu).Seconds()
	r.GenMaxRSSMB = float64(gen1.maxRSS) / (1 << 20)
	if serverOK {
		v := serverCPU.Seconds()
		r.ServerCPUS = &v
	} else {
		r.Notes = append(r.Notes, "server_cpu_s n/a and gen_cpu_s, gen_max_rss_mb include the servers: they run in the harness process")
	}
	if s.maxSeen >= s.maxInFlight {
		r.Notes = append(r.Notes, fmt.Sprintf("the generator reached its bound of %d calls in flight: due agents waited %.1f s in all (gen_at_bound_s); gen_lag_* say how late calls started", s.maxInFlight, r.GenAtBoundS))
	}
}
