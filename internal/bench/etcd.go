package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leasehold/leasehold/lease"
)

func init() { Register("etcd", func() Target { return &etcdTarget{} }) }

// etcdTarget is a 3-member etcd v3.7 cluster embedded in this process, on
// 127.0.0.1, with etcd's defaults (fsync on, 100 ms heartbeat, 1 s election
// timeout) and logging off. It does the lease job the way etcd users do it;
// see etcdSession.
type etcdTarget struct {
	members   []*embed.Etcd
	endpoints []string
	baseTerm  uint64
	// sessionTTL is the agents' session lease length (the harness's lease
	// duration), set before sessions are made.
	sessionTTL time.Duration
}

const etcdMembers = 3

func (t *etcdTarget) Name() string { return "etcd" }

func (t *etcdTarget) Start(ctx context.Context, dataDir string) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = t.start(ctx, dataDir); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		// Another process took one of the ports we picked: pick again.
		t.closeMembers()
		os.RemoveAll(dataDir)
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("etcd: start: %w", err)
	}
	for _, m := range t.members {
		select {
		case <-m.Server.ReadyNotify(): // published to the cluster: a leader exists
		case err := <-m.Err():
			return fmt.Errorf("etcd: member %s: %w", m.Config().Name, err)
		case <-ctx.Done():
			return fmt.Errorf("etcd: waiting for the cluster to be ready: %w", ctx.Err())
		}
	}
	t.baseTerm = t.maxTerm()
	return nil
}

// freePorts picks n free loopback ports by binding :0 and closing. Another
// process may take one before etcd binds it; Start retries on EADDRINUSE.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func (t *etcdTarget) start(ctx context.Context, dataDir string) error {
	ports, err := freePorts(2 * etcdMembers)
	if err != nil {
		return err
	}
	u := func(p int) url.URL { return url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", p)} }
	var initial []string
	for i := 0; i < etcdMembers; i++ {
		initial = append(initial, fmt.Sprintf("m%d=%s", i, (&url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}).String()))
	}
	t.endpoints = nil
	cfgs := make([]*embed.Config, etcdMembers)
	for i := range cfgs {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dataDir, cfg.Name)
		cu, pu := u(ports[2*i]), u(ports[2*i+1])
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "leasehold-bench"
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.Logger = "zap"
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfgs[i] = cfg
		t.endpoints = append(t.endpoints, cu.Host)
	}
	// Members block in StartEtcd until their peers are reachable, so start
	// them together.
	members := make([]*embed.Etcd, etcdMembers)
	errs := make([]error, etcdMembers)
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Go(func() { members[i], errs[i] = embed.StartEtcd(cfgs[i]) })
	}
	wg.Wait()
	for _, m := range members {
		if m != nil {
			t.members = append(t.members, m)
		}
	}
	return errors.Join(errs...)
}

// Endpoints and Attach let the cluster run in a child process (child.go).
func (t *etcdTarget) Endpoints() []string       { return t.endpoints }
func (t *etcdTarget) Attach(endpoints []string) { t.endpoints = endpoints }

func (t *etcdTarget) maxTerm() uint64 {
	var term uint64
	for _, m := range t.members {
		term = max(term, m.Server.Term())
	}
	return term
}

// Stats: leader changes are the Raft term's growth since Start (etcd runs
// with pre-vote, so the term moves only for real elections); the applied
// index is the highest of the members'. etcd has no per-op deadlines, so
// applied-after-deadline is not observable.
//
// Fsyncs is etcd's own etcd_disk_wal_fsync_duration_seconds count; the
// members share one process, hence one registry, so it is already the sum
// over the members.
func (t *etcdTarget) Stats(ctx context.Context) (Stats, error) {
	var idx uint64
	st := Stats{LeaderChanges: int(t.maxTerm() - t.baseTerm), HasIndex: true}
	for i, m := range t.members {
		idx = max(idx, m.Server.AppliedIndex())
		if m.Server.Leader() == m.Server.MemberID() && i < len(t.endpoints) {
			st.LeaderEndpoint = t.endpoints[i]
		}
	}
	st.AppliedIndex = idx
	st.Fsyncs, st.HasFsyncs = etcdWALFsyncs()
	return st, nil
}

// etcdWALFsyncs reads etcd's WAL fsync histogram count from the default
// Prometheus registry, where the embedded members register it.
func etcdWALFsyncs() (uint64, bool) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != "etcd_disk_wal_fsync_duration_seconds" {
			continue
		}
		var n uint64
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
		return n, true
	}
	return 0, false
}

// closeMembers stops all members at once. Each is hard-stopped first:
// Close would otherwise have the leader hand leadership to a member that is
// closing too and wait out the request timeout (7 s on this machine).
func (t *etcdTarget) closeMembers() {
	var wg sync.WaitGroup
	for _, m := range t.members {
		wg.Go(m.Server.HardStop)
	}
	wg.Wait()
	for _, m := range t.members {
		wg.Go(m.Close)
	}
	wg.Wait()
	t.members = nil
}

func (t *etcdTarget) Stop() error {
	t.closeMembers()
	return nil
}

func (t *etcdTarget) setLeaseDuration(d time.Duration) { t.sessionTTL = d }

// Observability: etcd makes no "not applied" promise tied to a deadline,
// and its renewals never touch the log.
func (t *etcdTarget) deadlineAware() bool { return false }
func (t *etcdTarget) renewalsInLog() bool { return false }

func (t *etcdTarget) NewSession(ctx context.Context) (Session, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   t.endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		Context:     context.Background(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: client: %w", err)
	}
	return &etcdSession{cli: cli, ttl: t.sessionTTL, held: map[string]int64{}}, nil
}

// etcdSession does the lease job the way etcd users do it with
// concurrency.Election (see peers.md §1), one RPC per harness call:
//
//   - every connection has one concurrency.Session, shared by the agents on
//     it as one process's elections share theirs: a lease of the agents'
//     lease duration, granted before the load starts (untimed, prepare) and
//     kept alive by clientv3's streaming KeepAlive. (One session per agent
//     was tried first: with 6,000-12,000 agents and time compression, the
//     sessions' own background keepalives, every TTL/3 for every agent,
//     waiting claimants included, outnumbered the harness's renewals several
//     times over and swamped etcd in the burst scenario: a cost of that
//     shape, not of etcd's lease path.) A holder therefore keeps its key
//     until it resigns; a lapsed holder that claims again is answered
//     "extended";
//   - claim: Campaign's one Txn, If(CreateRevision(k) == 0)
//     Then(Put(k, holder, WithLease(session))) Else(Get(k)); a key already
//     held by this holder (a restarted agent) is answered "extended";
//   - extend: KeepAliveOnce of the holder's session lease (renewals are
//     leader-local in etcd: no log entry);
//   - revoke: Resign's compare-and-delete Txn,
//     If(CreateRevision(k) == rev) Then(Delete(k));
//   - fencing token: the key's create revision;
//   - a denial's expiry: the holder's lease TTL from LeaseTimeToLive, asked
//     after the claim was answered and recorded, with a deadline of its own
//     (fillDenial), so the claim's latency is the Txn's alone.
//
// Errors that may hide an applied write (a client timeout, "request timed
// out", "leader changed", a lost connection) are unknown; only "no leader",
// "not capable" and "too many requests" promise the write was not applied.
type etcdSession struct {
	cli  *clientv3.Client
	ttl  time.Duration
	mu   sync.Mutex
	sess *concurrency.Session
	held map[string]int64 // create revision by key+"\x00"+holder
}

var (
	_ preparer     = (*etcdSession)(nil)
	_ denialFiller = (*etcdSession)(nil)
)

func etcdKey(key string) string { return "/leasehold-bench/" + key }

func ttlSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// prepare grants the connection's session (untimed setup).
func (s *etcdSession) prepare(ctx context.Context, holders []string) error {
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The session's lease lives on the client's context, not gctx.
	sess, err := newSession(gctx, s.cli, int(max(ttlSeconds(s.ttl), 2)))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sess = sess
	s.mu.Unlock()
	return nil
}

// newSession is concurrency.NewSession with the grant bounded by ctx.
func newSession(ctx context.Context, cli *clientv3.Client, ttl int) (*concurrency.Session, error) {
	g, err := cli.Grant(ctx, int64(ttl))
	if err != nil {
		return nil, err
	}
	return concurrency.NewSession(cli, concurrency.WithLease(g.ID), concurrency.WithTTL(ttl))
}

func (s *etcdSession) session(holder string) (*concurrency.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess != nil {
		return s.sess, nil
	}
	return nil, lease.Errorf(lease.CodeInvalidArgument, "etcd: no session (not prepared)")
}

func (s *etcdSession) Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	sess, err := s.session(holder)
	if err != nil {
		return Grant{}, err
	}
	k := etcdKey(key)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, holder, clientv3.WithLease(sess.Lease()))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return Grant{}, etcdErr(ctx, err)
	}
	if resp.Succeeded {
		rev := resp.Header.Revision
		s.remember(k, holder, rev)
		return Grant{Token: uint64(rev), ExpiresIn: s.ttl}, nil
	}
	var kv *mvccpb.KeyValue
	if rs := resp.Responses; len(rs) > 0 && len(rs[0].GetResponseRange().Kvs) > 0 {
		kv = rs[0].GetResponseRange().Kvs[0]
	}
	if kv == nil { // deleted between the compare and the get: cannot happen in one Txn
		return Grant{}, lease.Errorf(lease.CodeUnknown, "etcd: claim Txn failed on a key it did not find")
	}
	if string(kv.Value) == holder && clientv3.LeaseID(kv.Lease) == sess.Lease() {
		s.remember(k, holder, kv.CreateRevision)
		return Grant{Token: uint64(kv.CreateRevision), ExpiresIn: s.ttl, Extended: true}, nil
	}
	return Grant{}, &etcdDenied{le: &lease.Error{Code: lease.CodeDenied, Holder: string(kv.Value), Message: "lease held by another holder"}, id: clientv3.LeaseID(kv.Lease)}
}

// etcdDenied is a denial whose expiry fillDenial looks up.
type etcdDenied struct {
	le *lease.Error
	id clientv3.LeaseID
}

func (e *etcdDenied) Error() string { return e.le.Error() }
func (e *etcdDenied) Unwrap() error { return e.le }

// fillDenial sets a denial's expiry from the holder's lease TTL.
func (s *etcdSession) fillDenial(ctx context.Context, err error) {
	var d *etcdDenied
	if !errors.As(err, &d) {
		return
	}
	if ttl, err := s.cli.TimeToLive(ctx, d.id); err == nil && ttl.TTL > 0 {
		d.le.ExpiresIn = time.Duration(ttl.TTL) * time.Second
	}
}

func (s *etcdSession) remember(k, holder string, rev int64) {
	s.mu.Lock()
	s.held[k+"\x00"+holder] = rev
	s.mu.Unlock()
}

func (s *etcdSession) Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	sess, err := s.session(holder)
	if err != nil {
		return Grant{}, err
	}
	k := etcdKey(key)
	s.mu.Lock()
	rev, ok := s.held[k+"\x00"+holder]
	s.mu.Unlock()
	if !ok {
		return Grant{}, lease.Errorf(lease.CodeNotHeld, "no lease of this holder on this session")
	}
	ka, err := s.cli.KeepAliveOnce(ctx, sess.Lease())
	if err != nil || ka.TTL <= 0 {
		if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Grant{}, lease.Errorf(lease.CodeNotHeld, "session lease expired")
		}
		return Grant{}, etcdErr(ctx, err)
	}
	return Grant{Token: uint64(rev), ExpiresIn: time.Duration(ka.TTL) * time.Second}, nil
}

func (s *etcdSession) Revoke(ctx context.Context, key, holder string) error {
	k := etcdKey(key)
	s.mu.Lock()
	rev, ok := s.held[k+"\x00"+holder]
	delete(s.held, k+"\x00"+holder)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", rev)).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return etcdErr(ctx, err)
	}
	return nil // a key that changed was not this tenure's: nothing to release
}

func (s *etcdSession) Close() error {
	s.mu.Lock()
	if s.sess != nil {
		s.sess.Orphan()
	}
	s.mu.Unlock()
	return s.cli.Close()
}

// etcdErr classifies an etcd client error into the lease taxonomy.
func etcdErr(ctx context.Context, err error) error {
	code := lease.CodeUnknown
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		code = lease.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		code = lease.CodeUnknown // timed out: it may or may not have applied
	case errors.Is(err, rpctypes.ErrTooManyRequests):
		code = lease.CodeOverloaded // refused before proposing
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		code = lease.CodeNotHeld
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrNotCapable):
		code = lease.CodeUnavailable // refused before proposing
	default:
		// Everything else, including etcd's Unavailable answers "request
		// timed out", "leader changed", "timed out due to connection lost"
		// and "server stopped", and gRPC's own Unavailable (the request may
		// have been sent), may hide an applied write: unknown.
		switch status.Code(err) {
		case codes.ResourceExhausted:
			code = lease.CodeOverloaded
		case codes.Canceled:
			code = lease.CodeCanceled
		}
	}
	return &lease.Error{Code: code, Message: "etcd", Cause: err}
}
