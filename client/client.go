package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/internal/pemfile"
	"github.com/leasehold/leasehold/lease"
)

// Config configures a Client. Zero values take the defaults shown.
type Config struct {
	// Endpoints are the servers' client (gRPC) addresses, host:port.
	Endpoints []string
	// Token is the bearer token sent with every call (none if empty). It is
	// sent without TLS too, which is only safe on loopback.
	Token string
	// TLS, when set, connects over TLS (see TLSConfig).
	TLS *tls.Config

	// DefaultTimeout bounds a call whose context has no deadline (10s).
	DefaultTimeout time.Duration
	// ConnectTimeout bounds one connection attempt, so a call to a server
	// that does not answer fails over within it (2s).
	ConnectTimeout time.Duration
	// MaxAttempts caps the attempts of one call (5); it is raised to the
	// number of endpoints + 1 so every server can be tried once.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the full-jitter exponential backoff
	// between retries (50ms, 2s).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RetryRatio and RetryBurst size the retry budget: each call earns
	// RetryRatio retries, up to RetryBurst saved (0.1, 10).
	RetryRatio float64
	RetryBurst float64
	// MaxMsgBytes caps a sent or received message (16 MiB).
	MaxMsgBytes int

	// Rand returns a uniform float64 in [0, 1) for the backoff jitter
	// (math/rand/v2). Tests inject a fixed source.
	Rand func() float64
	// Sleep waits d or until ctx is done (a timer). Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// DialOptions are appended to the client's own.
	DialOptions []grpc.DialOption
}

func (cfg *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DefaultTimeout, 10*time.Second)
	def(&cfg.ConnectTimeout, 2*time.Second)
	def(&cfg.BackoffBase, 50*time.Millisecond)
	def(&cfg.BackoffMax, 2*time.Second)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryRatio <= 0 {
		cfg.RetryRatio = 0.1
	}
	if cfg.RetryBurst <= 0 {
		cfg.RetryBurst = 10
	}
	if cfg.MaxMsgBytes <= 0 {
		cfg.MaxMsgBytes = 16 << 20
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Sleep == nil {
		cfg.Sleep = defaultSleep
	}
}

// endpoint is one server.
type endpoint struct {
	addr string
	conn *grpc.ClientConn
	api  pb.LeaseholdClient
	id   atomic.Pointer[string] // learned from Status, reads and hints
}

func (e *endpoint) ID() string {
	if p := e.id.Load(); p != nil {
		return *p
	}
	return ""
}

func (e *endpoint) setID(id string) {
	if id != "" && e.ID() != id {
		e.id.Store(&id)
	}
}

// maxExtraEndpoints bounds the servers added from hints, so a confused
// cluster cannot make a client dial without end.
const maxExtraEndpoints = 16

// Client is a Leasehold client. It is safe for concurrent use.
type Client struct {
	cfg      Config
	dialOpts []grpc.DialOption
	budget   budget
	randMu   sync.Mutex
	closed   atomic.Bool

	mu     sync.Mutex
	eps    []*endpoint
	extra  int
	leader *endpoint
	next   int // round robin start for calls with no leader to go to

	renewOnce sync.Once
	renewer   *Renewer // see Renewer
}

// New dials every endpoint (connections are made lazily, on first use) and
// returns the client. It fails only on a bad configuration.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, lease.InvalidArgument("endpoints", "no endpoints")
	}
	cfg.setDefaults()
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	c := &Client{cfg: cfg, budget: newBudget(cfg.RetryBurst, cfg.RetryRatio)}
	c.dialOpts = []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			// Reconnect with jittered backoff, capped low: lease servers
			// restart, and a client must find them again within seconds.
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: cfg.ConnectTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMsgBytes), grpc.MaxCallSendMsgSize(cfg.MaxMsgBytes)),
	}
	if cfg.Token != "" {
		c.dialOpts = append(c.dialOpts, grpc.WithPerRPCCredentials(bearer(cfg.Token)))
	}
	c.dialOpts = append(c.dialOpts, cfg.DialOptions...)
	seen := make(map[string]bool)
	for _, addr := range cfg.Endpoints {
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		ep, err := c.dial(addr)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.eps = append(c.eps, ep)
	}
	if len(c.eps) == 0 {
		return nil, lease.InvalidArgument("endpoints", "no endpoints")
	}
	return c, nil
}

func (c *Client) dial(addr string) (*endpoint, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, c.dialOpts...)
	if err != nil {
		return nil, lease.InvalidArgument("endpoints", "endpoint %q: %v", addr, err)
	}
	return &endpoint{addr: addr, conn: conn, api: pb.NewLeaseholdClient(conn)}, nil
}

// Close closes every connection. Calls in flight fail with CodeCanceled or
// CodeUnknown (writes).
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.Renewer().close()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, ep := range c.eps {
		errs = append(errs, ep.conn.Close())
	}
	return errors.Join(errs...)
}

func (c *Client) endpoints() []*endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps
}

// pick chooses a server: the leader for writes and linearizable reads when
// known, else the next in round-robin order, skipping avoid.
func (c *Client) pick(k kind, avoid *endpoint) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k != kindStale && c.leader != nil && c.leader != avoid {
		return c.leader
	}
	for range c.eps {
		ep := c.eps[c.next%len(c.eps)]
		c.next++
		if ep != avoid || len(c.eps) == 1 {
			return ep
		}
	}
	return c.eps[0]
}

// pickExcept returns a server not in skip (round robin), or any if none.
func (c *Client) pickExcept(skip map[*endpoint]bool) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range c.eps {
		ep := c.eps[c.next%len(c.eps)]
		c.next++
		if !skip[ep] {
			return ep
		}
	}
	return c.eps[0]
}

func (c *Client) setLeader(ep *endpoint) {
	c.mu.Lock()
	c.leader = ep
	c.mu.Unlock()
}

func (c *Client) clearLeader(ep *endpoint) {
	c.mu.Lock()
	if c.leader == ep {
		c.leader = nil
	}
	c.mu.Unlock()
}

// byHint finds the server a NotLeader error points at: by ID; else by
// address (learning the ID); else, if some servers' IDs are unknown, by
// asking them for their status; else by dialing the hinted address. It
// returns nil when the hint is empty (no leader) or cannot be followed.
func (c *Client) byHint(ctx context.Context, e *lease.Error) *endpoint {
	if e.LeaderID == "" && e.LeaderAddr == "" {
		return nil
	}
	find := func() *endpoint {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ep := range c.eps {
			if e.LeaderID != "" && ep.ID() == e.LeaderID {
				return ep
			}
		}
		for _, ep := range c.eps {
			if e.LeaderAddr != "" && ep.addr == e.LeaderAddr && (ep.ID() == "" || e.LeaderID == "" || ep.ID() == e.LeaderID) {
				ep.setID(e.LeaderID)
				return ep
			}
		}
		return nil
	}
	if ep := find(); ep != nil {
		return ep
	}
	if e.LeaderID != "" && c.learnIDs(ctx) > 0 {
		if ep := find(); ep != nil {
			return ep
		}
	}
	if e.LeaderAddr == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.extra >= maxExtraEndpoints || c.closed.Load() {
		return nil
	}
	ep, err := c.dial(e.LeaderAddr)
	if err != nil {
		return nil
	}
	ep.setID(e.LeaderID)
	c.extra++
	c.eps = append(c.eps, ep)
	return ep
}

// learnIDs asks every server whose ID is unknown for its status, in
// parallel, bounded by ctx and the connect timeout. It returns how many IDs
// it learned.
func (c *Client) learnIDs(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var learned atomic.Int32
	for _, ep := range c.endpoints() {
		if ep.ID() != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, err := ep.api.Status(ctx, &pb.StatusRequest{}); err == nil && st.Id != "" {
				ep.setID(st.Id)
				learned.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(learned.Load())
}

// bearer sends the token as "authorization: Bearer <token>".
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so tokens work on a loopback dev
// cluster without TLS; configure TLS for anything else.
func (bearer) RequireTransportSecurity() bool { return false }

// TLSConfig builds a client TLS configuration: caFile (PEM) verifies the
// servers (system roots when empty); certFile and keyFile, when given, are
// the client's certificate for mutual TLS; serverName overrides the name
// checked in the server's certificate.
func TLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := pemfile.CertPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client: load TLS key pair: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
