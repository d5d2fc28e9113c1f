package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// fill computes the per-op costs from the window's snapshots.
func (s *ceilSample) fill(a, b cpuSnap, pid int, rssBase uint64) {
	win := b.at.Sub(a.at).Seconds()
	if s.Good > 0 {
		srv := float64((b.server - a.server).Microseconds()) / float64(s.Good)
		s.ServerCPUUs = &srv
		s.LoadgenCPUUs = float64((b.self - a.self).Microseconds()) / float64(s.Good)
		if a.hasFsyn && b.hasFsyn {
			f := float64(b.fsyncs-a.fsyncs) / float64(s.Good)
			s.Fsyncs = &f
		}
	}
	s.ServerCores = (b.server - a.server).Seconds() / win
	s.LoadgenCores = (b.self - a.self).Seconds() / win
	s.MaxRSSMB = float64(procStatusBytes(pid, "VmHWM:")) / (1 << 20)
	if rss := procRSS(pid); s.Held >= 10000 && rss > rssBase {
		per := float64(rss-rssBase) / float64(s.Held)
		s.RSSPerLeaseB = &per
	}
}

// revokeKeys sizes a revoke worker's prepared keys to outlast the run at a
// generous guess of the target's rate (a worker that runs out stops and the
// report says so).
func revokeKeys(target string, conc int, d time.Duration) int {
	rate := min(float64(conc)*2000, 40000)
	if target == "etcd" {
		rate = min(float64(conc)*2000, 15000)
	}
	return max(50, int(rate*d.Seconds()*1.5/float64(conc)))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// expireResult is what a target's expire run saw: each lease's lag from
// its due time (the start of the call that granted it + its TTL) to the
// client seeing it expire (a watch event).
type expireResult struct {
	lags      []time.Duration
	firstDue  time.Time
	lastDue   time.Time
	lastEvent time.Time
	missing   int // leases whose expiry was not seen in time
}

// runExpire: p.leases leases of ExpireTTL are granted (untimed) and left to
// run out; drain rate = expired / (last expiry seen - first due time).
func (r *ceilRunner) runExpire(ctx context.Context, t Target, pid int, rssBase uint64, c ceilConn, p ceilParams, s ceilSample) (ceilSample, error) {
	p.leases, p.ttl, p.par = r.o.ExpireLeases, r.o.ExpireTTL, 100
	var a cpuSnap
	p.onSetup = func() { a = r.snap(ctx, t, pid) }
	res, err := c.expire(ctx, p)
	if err != nil {
		return s, err
	}
	b := r.snap(ctx, t, pid)
	n := len(res.lags)
	s.Good, s.Errors, s.Held = uint64(n), uint64(res.missing), p.leases
	if res.missing > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d of %d expiries not seen before the wait ended", res.missing, p.leases))
	}
	if n > 0 {
		var h hist
		for _, l := range res.lags {
			h.add(l)
		}
		s.LagP50Ms, s.LagP99Ms = ms(h.quantile(.5)), ms(h.quantile(.99))
		s.P50Ms, s.P99Ms = s.LagP50Ms, s.LagP99Ms
		span := res.lastEvent.Sub(res.firstDue)
		s.OpsPerSec = float64(n) / max(span.Seconds(), 0.001)
		s.WindowSeconds = span.Seconds()
	}
	s.DueSpreadS = res.lastDue.Sub(res.firstDue).Seconds()
	s.Held = 0 // nothing is held at the end; RSS per lease is not measured here
	s.fill(a, b, pid, rssBase)
	s.Held = p.leases
	return s, nil
}

// offer sends due times on jobs at rate per second until stop, then closes
// jobs. A due time no worker takes at once is dropped; those due inside
// the window [ws, we) are counted.
func offer(ctx context.Context, jobs chan<- time.Time, stop <-chan struct{}, rate float64, base time.Time, ws, we *atomic.Int64, dropped *atomic.Uint64) {
	defer close(jobs)
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for !next.After(now) {
				select {
				case jobs <- next:
				default:
					if at := int64(next.Sub(base)); at >= ws.Load() && at < we.Load() {
						dropped.Add(1)
					}
				}
				next = next.Add(interval)
			}
		}
	}
}
