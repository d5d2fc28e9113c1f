package metrics

import (
	"context"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

const ns = "leasehold"

// latencyBuckets span a loopback round trip to a stuck commit (seconds).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics are one server's collectors.
type Metrics struct {
	Registry *prometheus.Registry
	Series   *Series

	queueDepth    *prometheus.GaugeVec
	queueWait     *prometheus.HistogramVec
	entryOps      prometheus.Histogram
	entryBytes    prometheus.Histogram
	commitLatency prometheus.Histogram
	rejects       *prometheus.CounterVec
	opLatency     *prometheus.HistogramVec
	leaderChanges prometheus.Counter
	fsyncLatency  prometheus.Histogram
	retryAfter    prometheus.Histogram
	callsRefused  *prometheus.CounterVec

	status func() grpcserver.Status

	certsMu sync.Mutex
	certs   *certCollector

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New creates the collectors. status is read at every scrape for the Raft
// and state gauges (nil leaves them out).
func New(status func() grpcserver.Status) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), Series: NewSeries(120), stop: make(chan struct{}), status: status}
	f := promauto{m.Registry}
	m.queueDepth = f.gaugeVec("queue_depth", "Ops waiting in the admission queue, per lane.", "lane")
	m.queueWait = f.histVec("queue_wait_seconds", "Time an op waited in the admission queue before it was proposed.", latencyBuckets, "lane")
	m.entryOps = f.hist("entry_ops", "Ops per proposed log entry.", prometheus.ExponentialBuckets(1, 2, 12))
	m.entryBytes = f.hist("entry_bytes", "Encoded size bound of proposed log entries.", prometheus.ExponentialBuckets(64, 4, 10))
	m.commitLatency = f.hist("commit_seconds", "Time from proposing an entry to its result.", latencyBuckets)
	m.rejects = f.counterVec("rejects_total", "Ops answered without being proposed, by reason and lane.", "reason", "lane")
	m.opLatency = f.histVec("op_seconds", "API call latency by op and result (ok or the error code).", latencyBuckets, "op", "result")
	m.leaderChanges = f.counter("leader_changes_total", "Leader changes this server observed.")
	m.fsyncLatency = f.hist("fsync_seconds", "Time to append a batch of entries to the Raft log (one fsync).", latencyBuckets)
	m.retryAfter = f.hist("retry_after_seconds", "Retry-after told to calls refused as overloaded.", []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30})
	m.callsRefused = f.counterVec("calls_refused_total", "Unary calls refused as overloaded before they were read, because too many were in progress (--max-calls), by op.", "op")
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if status != nil {
		m.Registry.MustRegister(&stateCollector{status: status})
	}
	// Expose the lanes and reasons at zero before anything happens, so
	// dashboards and alerts see the series from the start.
	for _, l := range []admission.Lane{admission.LaneRenewal, admission.LaneClaim} {
		m.queueDepth.WithLabelValues(l.String())
		for _, r := range []admission.Reason{admission.ReasonOverloaded, admission.ReasonQueueFull, admission.ReasonDeadline, admission.ReasonCanceled} {
			m.rejects.WithLabelValues(r.String(), l.String())
		}
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Hooks are the admission queue's metric callbacks.
func (m *Metrics) Hooks() admission.Hooks {
	return admission.Hooks{
		Depth: func(l admission.Lane, d int) {
			m.queueDepth.WithLabelValues(l.String()).Set(float64(d))
			m.Series.SetDepth(time.Now(), l, d)
		},
		Wait: func(l admission.Lane, d time.Duration) { m.queueWait.WithLabelValues(l.String()).Observe(d.Seconds()) },
		Entry: func(ops, bytes int) {
			m.entryOps.Observe(float64(ops))
			m.entryBytes.Observe(float64(bytes))
			m.Series.AddEntry(time.Now(), ops)
		},
		Committed: func(ops int, latency time.Duration, err error) {
			m.commitLatency.Observe(latency.Seconds())
			m.Series.AddCommit(time.Now(), latency)
		},
		Rejected: func(r admission.Reason, l admission.Lane, n int) {
			m.rejects.WithLabelValues(r.String(), l.String()).Add(float64(n))
			m.Series.AddRejectsReason(time.Now(), r, n)
		},
	}
}

// CountEvents exports counts, read at every scrape, as
// lease_events_total{kind}: the state machine counts the events it applies
// whether or not it records them, so the metric costs nothing per op.
func (m *Metrics) CountEvents(counts func() fsm.EventCounts) {
	m.Registry.MustRegister(eventCollector(counts))
}

var descEvents = prometheus.NewDesc(ns+"_lease_events_total", "Applied lease events by kind (claimed, extended, revoked, expired, pinned, unpinned).", []string{"kind"}, nil)

// eventCollector reads the state machine's event counts at scrape time.
type eventCollector func() fsm.EventCounts

func (c eventCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descEvents }

func (c eventCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c()
	for k := lease.EventClaimed; int(k) < len(counts); k++ {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(counts[k]), k.String())
	}
}

// resultOf names a call's outcome: "ok" or the Leasehold error code.
func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	if st, ok := status.FromError(err); ok {
		if e, ok := wire.FromStatus(st); ok {
			return e.Code.String()
		}
	}
	return wire.AsError(err).Code.String()
}

// retryAfterOf is the retry-after an overloaded answer carried (0 if none).
func retryAfterOf(err error) time.Duration {
	if err == nil {
		return 0
	}
	if st, ok := status.FromError(err); ok {
		if e, ok := wire.FromStatus(st); ok && e.Code == lease.CodeOverloaded {
			return e.RetryAfter
		}
		return 0
	}
	if e := wire.AsError(err); e.Code == lease.CodeOverloaded {
		return e.RetryAfter
	}
	return 0
}

// UnaryInterceptor records every unary call's latency by op (the method
// name, e.g. Claim) and result.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		d := time.Since(start)
		m.opLatency.WithLabelValues(path.Base(info.FullMethod), resultOf(err)).Observe(d.Seconds())
		m.Series.AddOp(start, d, err == nil)
		if ra := retryAfterOf(err); ra > 0 {
			m.retryAfter.Observe(ra.Seconds())
			m.Series.AddRetryAfter(start.Add(d), ra)
		}
		return resp, err
	}
}

// CallRefused counts a call the API server refused over its limit of calls
// in progress (grpcserver.Options.OnCallRefused).
func (m *Metrics) CallRefused(method string, retryAfter time.Duration) {
	m.callsRefused.WithLabelValues(path.Base(method)).Inc()
	m.retryAfter.Observe(retryAfter.Seconds())
	m.Series.AddRetryAfter(time.Now(), retryAfter)
}

// WatchLeader counts leader changes seen by r until Close, and samples the
// replicated clock every second for the status page's chart (a sampler, not
// the scrape: the clock matters most when nothing else happens).
func (m *Metrics) WatchLeader(r *raft.Raft) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer r.DeregisterObserver(obs)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case now := <-tick.C:
				if m.status != nil {
					m.Series.SetReplicated(now, m.status().Now)
				}
			case o := <-ch:
				if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
					m.leaderChanges.Inc()
					m.Series.AddLeaderChange(time.Now())
				}
			}
		}
	}()
}

// Close stops the leader watch.
func (m *Metrics) Close() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.wg.Wait()
}

// stateCollector reads the node's status at scrape time.
type stateCollector struct {
	status func() grpcserver.Status

	certsMu sync.Mutex
	certs   *certCollector
}

var (
	descState   = prometheus.NewDesc(ns+"_raft_state", "1 for this server's Raft state.", []string{"state"}, nil)
	descTerm    = prometheus.NewDesc(ns+"_raft_term", "Current Raft term.", nil, nil)
	descCommit  = prometheus.NewDesc(ns+"_raft_commit_index", "Raft commit index.", nil, nil)
	descApplied = prometheus.NewDesc(ns+"_raft_applied_index", "Index of the last entry applied to the state machine.", nil, nil)
	descLast    = prometheus.NewDesc(ns+"_raft_last_index", "Last index in this server's log.", nil, nil)
	descLag     = prometheus.NewDesc(ns+"_apply_lag_entries", "Log entries known but not yet applied here.", nil, nil)
	descLeases  = prometheus.NewDesc(ns+"_leases_held", "Leases held in the replicated state.", nil, nil)
	descMembers = prometheus.NewDesc(ns+"_members", "Servers in the Raft configuration, by suffrage.", []string{"suffrage"}, nil)
	descLeader  = prometheus.NewDesc(ns+"_is_leader", "1 if this server leads.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descCommit, descApplied, descLast, descLag, descLeases, descMembers, descLeader, descReplicated} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	for _, s := range []string{"leader", "follower", "candidate", "shutdown"} {
		v := 0.0
		if st.State == s {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, s)
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descTerm, float64(st.Term))
	gauge(descCommit, float64(st.CommitIndex))
	gauge(descApplied, float64(st.AppliedIndex))
	gauge(descLast, float64(st.LastIndex))
	lag := 0.0
	if st.LastIndex > st.AppliedIndex {
		lag = float64(st.LastIndex - st.AppliedIndex)
	}
	gauge(descLag, lag)
	gauge(descLeases, float64(st.Leases))
	gauge(descReplicated, st.Now.Seconds())
	voters, nonvoters := 0, 0
	for _, mem := range st.Members {
		if mem.Voter {
			voters++
		} else {
			nonvoters++
		}
	}
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(voters), "voter")
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(nonvoters), "nonvoter")
	leader := 0.0
	if st.State == "leader" {
		leader = 1
	}
	gauge(descLeader, leader)
}

// promauto registers collectors on one registry.
type promauto struct{ r *prometheus.Registry }

func (f promauto) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)
	f.r.MustRegister(v)
	return v
}

func (f promauto) histVec(name, help string, b []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: b}, labels)
	f.r.MustRegister(v)
	return v
}

func (f promauto) hist(name, help string, b []float64) prometheus.Histogram {
	v := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: b})
	f.r.MustRegister(v)
	return v
}

func (f promauto) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	f.r.MustRegister(v)
	return v
}

func (f promauto) counter(name, help string) prometheus.Counter {
	v := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	f.r.MustRegister(v)
	return v
}
