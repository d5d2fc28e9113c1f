package manager

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Config configures a Manager. Zero values take the defaults shown.
type Config struct {
	Transport Transport
	// Clock and Rand (uniform in [0, 1)) are injected by tests.
	Clock Clock
	Rand  func() float64
	// Budget is the retry budget; share the client's (client.RetryBudget)
	// so both layers retry within one bound (default: a new 10%/10 budget).
	Budget *client.Budget

	// RenewFraction is when a lease is renewed, as a fraction of its
	// duration, when the server suggests nothing (0.5). RenewJitter is the
	// largest fraction of the interval a renewal is moved earlier by, at
	// random, so holders that claimed together do not renew together (0.2).
	RenewFraction float64
	RenewJitter   float64
	// MaxAttempts caps the attempts of one op (5). BackoffBase and
	// BackoffMax shape the full-jitter backoff between them (50ms, 2s).
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Naive turns off what protects the cluster from a herd, for
	// comparison only: fixed retry interval BackoffBase with no jitter, no
	// retry budget, renewals with no jitter at RenewFraction.
	Naive bool

	// MaxBatch caps the ops of one Bulk call (1000), MaxInFlight the bulk
	// calls outstanding (2), MaxQueued the ops waiting for a call (100,000:
	// beyond it ops are answered Overloaded at once). CallTimeout bounds a
	// bulk call (5s).
	MaxBatch    int
	MaxInFlight int
	MaxQueued   int
	CallTimeout time.Duration
	// QueueWait is the keep-alive of a queued claim (ClaimOnRelease); it is
	// refreshed every half of it (30s).
	QueueWait time.Duration
	// ShutdownWait bounds how long Close waits for in-flight ops (5s).
	ShutdownWait time.Duration
	// OnLost is called (from the lease's renewal goroutine) when a held
	// lease is lost or can no longer be vouched for.
	OnLost func(l *Lease, err error)
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Budget == nil {
		c.Budget = client.NewBudget(10, 0.1)
	}
	if c.RenewFraction <= 0 || c.RenewFraction >= 1 {
		c.RenewFraction = 0.5
	}
	if c.RenewJitter < 0 || c.RenewJitter >= 1 || c.RenewJitter == 0 {
		c.RenewJitter = 0.2
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	def(&c.BackoffBase, 50*time.Millisecond)
	def(&c.BackoffMax, 2*time.Second)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 100_000
	}
	def(&c.CallTimeout, 5*time.Second)
	def(&c.QueueWait, 30*time.Second)
	def(&c.ShutdownWait, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats counts what the manager sent. Amplification is Attempts/FirstAttempts.
type Stats struct {
	FirstAttempts int64 // ops asked of the manager that reached the batcher
	Attempts      int64 // ops sent, retries included
	Retries       int64
	BulkCalls     int64
	LocalDenials  int64 // claims denied from a recent denial, no RPC
	Lost          int64 // held leases reported lost
	GaveUp        int64 // ops that ended with a retryable error (cap, budget, deadline)
}

// Manager multiplexes many holders' lease ops onto bulk calls.
type Manager struct {
	cfg    Config
	ctx    context.Context // cancelled by Close after the shutdown wait
	cancel context.CancelFunc
	stop   chan struct{}  // closed when Close begins: renewals stop at once
	wg     sync.WaitGroup // renewal loops, refreshers, watch
	randMu sync.Mutex

	mu       sync.Mutex
	closed   bool
	queue    []*pending
	inflight int
	calls    sync.WaitGroup

	st struct {
		first, attempts, retries, bulk, localDenied, lost, gaveUp atomic.Int64
	}

	waits waitState
}

// New starts a manager. It does not dial anything: the transport does.
func New(cfg Config) *Manager {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, ctx: ctx, cancel: cancel, stop: make(chan struct{})}
	m.waits.init()
	return m
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	return Stats{FirstAttempts: m.st.first.Load(), Attempts: m.st.attempts.Load(), Retries: m.st.retries.Load(),
		BulkCalls: m.st.bulk.Load(), LocalDenials: m.st.localDenied.Load(), Lost: m.st.lost.Load(), GaveUp: m.st.gaveUp.Load()}
}

func (m *Manager) rand() float64 {
	m.randMu.Lock()
	defer m.randMu.Unlock()
	return m.cfg.Rand()
}

// Close stops renewals (held leases are not revoked: they expire unless
// their holders come back), waits up to ShutdownWait for in-flight bulk
// calls, then cancels whatever is left. Ops submitted after Close fail with
// CodeCanceled. It reports whether everything finished within the bound.
func (m *Manager) Close() bool {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return true
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	m.waits.closeAll()
	done := make(chan struct{})
	go func() { m.calls.Wait(); close(done) }()
	t := m.cfg.Clock.NewTimer(m.cfg.ShutdownWait)
	clean := true
	select {
	case <-done:
		t.Stop()
	case <-t.C():
		clean = false
	}
	m.cancel()
	<-done
	m.wg.Wait()
	return clean
}

// pending is one op waiting for a bulk call.
type pending struct {
	cmd   lease.Command
	reply chan opReply
	gone  atomic.Bool // the caller stopped waiting before it was sent
}

type opReply struct {
	res client.Result
	err error
}

var errClosed = lease.Errorf(lease.CodeCanceled, "lease manager closed")

// send runs one attempt of cmd through the batcher.
func (m *Manager) send(ctx context.Context, cmd lease.Command) (client.Result, error) {
	p := &pending{cmd: cmd, reply: make(chan opReply, 1)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return client.Result{}, errClosed
	}
	if len(m.queue) >= m.cfg.MaxQueued {
		m.mu.Unlock()
		return client.Result{}, &lease.Error{Code: lease.CodeOverloaded, Message: "lease manager queue full", RetryAfter: m.cfg.BackoffMax}
	}
	m.queue = append(m.queue, p)
	if m.inflight < m.cfg.MaxInFlight {
		m.inflight++
		m.calls.Add(1)
		go m.flush()
	}
	m.mu.Unlock()
	m.st.attempts.Add(1)
	select {
	case r := <-p.reply:
		return r.res, r.err
	case <-ctx.Done():
		p.gone.Store(true)
		return client.Result{}, &lease.Error{Code: lease.CodeCanceled, Message: "canceled by the caller; the op may still be applied", Cause: ctx.Err()}
	case <-m.ctx.Done():
		p.gone.Store(true)
		return client.Result{}, errClosed
	}
}

// flush sends batches until the queue is empty. Group commit without
// timers: ops arriving while a call is out wait for the next one.
func (m *Manager) flush() {
	defer m.calls.Done()
	for {
		m.mu.Lock()
		n := 0
		batch := make([]*pending, 0, min(len(m.queue), m.cfg.MaxBatch))
		for n < len(m.queue) && len(batch) < m.cfg.MaxBatch {
			if p := m.queue[n]; !p.gone.Load() {
				batch = append(batch, p)
			}
			n++
		}
		m.queue = m.queue[n:]
		if len(m.queue) == 0 {
			m.queue = nil // let the backing array go
		}
		if len(batch) == 0 {
			m.inflight--
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		m.call(batch)
	}
}

func (m *Manager) call(batch []*pending) {
	cmds := make([]lease.Command, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.CallTimeout)
	defer cancel()
	m.st.bulk.Add(1)
	res, err := m.cfg.Transport.Bulk(ctx, cmds)
	if err == nil && len(res) != len(batch) {
		err = lease.Errorf(lease.CodeUnknown, "transport answered %d results for %d ops", len(res), len(batch))
	}
	for i, p := range batch {
		if err != nil {
			p.reply <- opReply{err: err}
		} else {
			p.reply <- opReply{res: res[i].Result, err: res[i].Err}
		}
	}
}
