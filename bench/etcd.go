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
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	return &etcdSession{cli: cli, held: map[string]etcdHeld{}}, nil
}

// etcdSession does the lease job the way etcd users do (see peers.md §1):
//
//   - claim: read the key; if another holder has it, deny (with its lease's
//     remaining TTL, from LeaseTimeToLive) without writing; if this holder
//     has it (a retried or restarted claim), KeepAliveOnce its lease; if it
//     is absent, LeaseGrant(TTL = duration rounded up to whole seconds) then
//     Txn(If CreateRevision(key)==0 Then Put(key, holder, WithLease(id))
//     Else Get(key)). A lost race (or a failed Txn) revokes the unused lease.
//   - extend: KeepAliveOnce on the holder's lease (leader-local in etcd: no
//     log entry); "lease not found" means the lease expired: not_held.
//   - revoke: LeaseRevoke of the holder's lease (deletes the key).
//   - fencing token: the key's create revision.
//
// A client-side timeout is classified unknown (etcd cannot say whether a
// timed-out write applied); "too many requests" is overloaded.
type etcdSession struct {
	cli  *clientv3.Client
	mu   sync.Mutex
	held map[string]etcdHeld // by etcdKey(key)+"\x00"+holder
}

type etcdHeld struct {
	id    clientv3.LeaseID
	token uint64
}

func etcdKey(key string) string { return "/leasehold-bench/" + key }

func ttlSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

func (s *etcdSession) remember(k, holder string, h etcdHeld) {
	s.mu.Lock()
	s.held[k+"\x00"+holder] = h
	s.mu.Unlock()
}

func (s *etcdSession) lookup(k, holder string, forget bool) (etcdHeld, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[k+"\x00"+holder]
	if forget {
		delete(s.held, k+"\x00"+holder)
	}
	return h, ok
}

func (s *etcdSession) Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	k := etcdKey(key)
	get, err := s.cli.Get(ctx, k)
	if err != nil {
		return Grant{}, etcdErr(ctx, err)
	}
	if len(get.Kvs) > 0 {
		kv := get.Kvs[0]
		id := clientv3.LeaseID(kv.Lease)
		if string(kv.Value) != holder {
			return Grant{}, s.denied(ctx, string(kv.Value), id)
		}
		ka, err := s.cli.KeepAliveOnce(ctx, id)
		switch {
		case err == nil && ka.TTL > 0:
			s.remember(k, holder, etcdHeld{id, uint64(kv.CreateRevision)})
			return Grant{Token: uint64(kv.CreateRevision), ExpiresIn: time.Duration(ka.TTL) * time.Second, Extended: true}, nil
		case err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return Grant{}, etcdErr(ctx, err)
		}
		// The lease expired between the read and the renewal: claim anew.
	}
	lg, err := s.cli.Grant(ctx, ttlSeconds(d))
	if err != nil {
		return Grant{}, etcdErr(ctx, err)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, holder, clientv3.WithLease(lg.ID))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil || !resp.Succeeded {
		s.revokeUnused(lg.ID)
	}
	if err != nil {
		return Grant{}, etcdErr(ctx, err)
	}
	if !resp.Succeeded {
		other := ""
		if rs := resp.Responses; len(rs) > 0 && len(rs[0].GetResponseRange().Kvs) > 0 {
			other = string(rs[0].GetResponseRange().Kvs[0].Value)
		}
		return Grant{}, &lease.Error{Code: lease.CodeDenied, Holder: other, Message: "lease held by another holder"}
	}
	token := uint64(resp.Header.Revision)
	s.remember(k, holder, etcdHeld{lg.ID, token})
	return Grant{Token: token, ExpiresIn: time.Duration(lg.TTL) * time.Second}, nil
}

// revokeUnused releases a lease the claim did not use, best effort.
func (s *etcdSession) revokeUnused(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.cli.Revoke(ctx, id)
}

func (s *etcdSession) denied(ctx context.Context, holder string, id clientv3.LeaseID) error {
	e := &lease.Error{Code: lease.CodeDenied, Holder: holder, Message: "lease held by another holder"}
	if ttl, err := s.cli.TimeToLive(ctx, id); err == nil && ttl.TTL > 0 {
		e.ExpiresIn = time.Duration(ttl.TTL) * time.Second
	}
	return e
}

func (s *etcdSession) Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	k := etcdKey(key)
	h, ok := s.lookup(k, holder, false)
	if !ok {
		return Grant{}, lease.Errorf(lease.CodeNotHeld, "no lease of this holder on this session")
	}
	ka, err := s.cli.KeepAliveOnce(ctx, h.id)
	if err != nil || ka.TTL <= 0 {
		if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.lookup(k, holder, true)
			return Grant{}, lease.Errorf(lease.CodeNotHeld, "lease expired")
		}
		return Grant{}, etcdErr(ctx, err)
	}
	return Grant{Token: h.token, ExpiresIn: time.Duration(ka.TTL) * time.Second}, nil
}

func (s *etcdSession) Revoke(ctx context.Context, key, holder string) error {
	h, ok := s.lookup(etcdKey(key), holder, true)
	if !ok {
		return nil
	}
	if _, err := s.cli.Revoke(ctx, h.id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return etcdErr(ctx, err)
	}
	return nil
}

func (s *etcdSession) Close() error { return s.cli.Close() }

// etcdErr classifies an etcd client error into the lease taxonomy.
func etcdErr(ctx context.Context, err error) error {
	code := lease.CodeUnknown
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		code = lease.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		code = lease.CodeUnknown // timed out: it may or may not have applied
	case errors.Is(err, rpctypes.ErrTooManyRequests):
		code = lease.CodeOverloaded
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		code = lease.CodeNotHeld
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrNotCapable), errors.Is(err, rpctypes.ErrStopped):
		code = lease.CodeUnavailable
	default:
		switch status.Code(err) {
		case codes.Unavailable:
			code = lease.CodeUnavailable
		case codes.ResourceExhausted:
			code = lease.CodeOverloaded
		case codes.Canceled:
			code = lease.CodeCanceled
		}
	}
	return &lease.Error{Code: code, Message: "etcd", Cause: err}
}
