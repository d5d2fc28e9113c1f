package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

func init() {
	Register("leasehold", func() Target { return &leaseholdTarget{name: "leasehold", mode: backend.Admitted} })
	Register("naive", func() Target { return &leaseholdTarget{name: "naive", mode: backend.Naive} })
}

// leaseholdTarget is a fresh 3-node Leasehold cluster on loopback (package
// cluster: free ports, the bbolt log store with fsync on, production Raft timeouts).
// "leasehold" runs the production write path (admission queue, many ops per
// entry); "naive" runs node.Naive: one op per log entry, no admission
// control. Both are driven through the Go client, with bulk calls, so the
// difference between them is the server side only.
type leaseholdTarget struct {
	name string
	mode backend.Mode

	c         *devcluster.Cluster
	endpoints []string
	baseTerm  uint64
	// fsyncs counts the members' Raft log-store writes: each is one
	// fdatasync (walstore.StoreLogs), the counterpart of an etcd WAL fsync.
	fsyncs atomic.Uint64
}

// countingLogStore counts the durable writes of a Raft log store.
type countingLogStore struct {
	raft.LogStore
	n *atomic.Uint64
}

func (s countingLogStore) StoreLog(l *raft.Log) error {
	s.n.Add(1)
	return s.LogStore.StoreLog(l)
}

func (s countingLogStore) StoreLogs(ls []*raft.Log) error {
	s.n.Add(1)
	return s.LogStore.StoreLogs(ls)
}

func (t *leaseholdTarget) Name() string { return t.name }

func (t *leaseholdTarget) Start(ctx context.Context, dataDir string) error {
	c, err := devcluster.Start(ctx, devcluster.Options{Dir: dataDir, Size: 3, Node: backend.Options{Mode: t.mode},
		Raft: func(rc *replica.Config) {
			rc.WrapLogStore = func(s raft.LogStore) raft.LogStore { return countingLogStore{s, &t.fsyncs} }
		}})
	if err != nil {
		return fmt.Errorf("%s: start: %w", t.name, err)
	}
	t.c = c
	if _, err := c.WaitLeader(ctx); err != nil {
		return fmt.Errorf("%s: no leader: %w", t.name, err)
	}
	t.endpoints = nil
	for _, m := range c.Members {
		t.endpoints = append(t.endpoints, m.ClientAddr)
	}
	t.baseTerm = t.maxTerm()
	return nil
}

// Endpoints and Attach let the cluster run in a child process (child.go):
// the child reports its endpoints, the parent's target only makes sessions.
func (t *leaseholdTarget) Endpoints() []string       { return t.endpoints }
func (t *leaseholdTarget) Attach(endpoints []string) { t.endpoints = endpoints }

func (t *leaseholdTarget) maxTerm() uint64 {
	var term uint64
	for _, m := range t.c.Members {
		if r := m.Raft(); r != nil {
			term = max(term, r.Raft().CurrentTerm())
		}
	}
	return term
}

// Stats: leader changes are the growth of the highest Raft term since Start.
// hashicorp/raft v1.8 runs pre-vote, so a term only starts with a real
// election (a partitioned node does not inflate it); a term that elects
// nobody still counts, which can only overstate the changes. The applied
// index is the highest of the members'; it includes the leader's tick
// entries (an empty entry every 250 ms when the queue is idle) and member
// directory entries, so ops_per_entry slightly understates batching.
func (t *leaseholdTarget) Stats(ctx context.Context) (Stats, error) {
	if t.c == nil {
		return Stats{}, errors.New(t.name + ": not started")
	}
	st := Stats{LeaderChanges: int(t.maxTerm() - t.baseTerm), HasIndex: true, Fsyncs: t.fsyncs.Load(), HasFsyncs: true}
	for _, m := range t.c.Members {
		if r := m.Raft(); r != nil {
			st.AppliedIndex = max(st.AppliedIndex, r.Raft().AppliedIndex())
		}
	}
	if l := t.c.Leader(); l != nil {
		st.LeaderEndpoint = l.ClientAddr
	}
	if t.mode == backend.Admitted {
		if l := t.c.Leader(); l != nil {
			if n := l.Node(); n != nil {
				st.QueueDepth, st.HasQueueDepth = n.Queue().Stats().Queued(), true
			}
		}
	}
	return st, nil
}

func (t *leaseholdTarget) Stop() error {
	if t.c == nil {
		return nil
	}
	err := t.c.Close()
	t.c = nil
	return err
}

func (t *leaseholdTarget) NewSession(ctx context.Context) (Session, error) {
	if len(t.endpoints) == 0 {
		return nil, errors.New(t.name + ": no endpoints")
	}
	c, err := client.New(client.Config{
		Endpoints: t.endpoints,
		// One attempt (raised by the client to one per member, for routing
		// to the leader): retrying is the agents' job, as it is for etcd,
		// and rejects must reach the report.
		MaxAttempts: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: client: %w", t.name, err)
	}
	return &leaseholdSession{c: c}, nil
}

// leaseholdSession maps the harness's calls onto the Go client. The client
// already returns *lease.Error with the taxonomy's promises (a lost answer
// is unknown, never deadline_exceeded).
type leaseholdSession struct{ c *client.Client }

var _ BulkSession = (*leaseholdSession)(nil)

func grantOf(r client.Result) Grant {
	return Grant{Token: r.Token, ExpiresIn: r.ExpiresIn, Extended: r.Outcome == lease.OutcomeExtended}
}

func (s *leaseholdSession) Claim(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	k, err := lease.ParseKey(key)
	if err != nil {
		return Grant{}, err
	}
	r, err := s.c.Claim(ctx, k, holder, d)
	if err != nil {
		return Grant{}, err
	}
	return grantOf(r), nil
}

func (s *leaseholdSession) Extend(ctx context.Context, key, holder string, d time.Duration) (Grant, error) {
	k, err := lease.ParseKey(key)
	if err != nil {
		return Grant{}, err
	}
	r, err := s.c.Extend(ctx, k, holder, d)
	if err != nil {
		return Grant{}, err
	}
	return grantOf(r), nil
}

// Revoke: Leasehold answers not_held when another holder has the key; the
// Session contract (and etcd) make revoking what one does not hold a
// success.
func (s *leaseholdSession) Revoke(ctx context.Context, key, holder string) error {
	k, err := lease.ParseKey(key)
	if err != nil {
		return err
	}
	_, err = s.c.Revoke(ctx, k, holder)
	return revokeErr(err)
}

func revokeErr(err error) error {
	if errors.Is(err, lease.ErrNotHeld) {
		return nil
	}
	return err
}

func (s *leaseholdSession) Bulk(ctx context.Context, ops []BulkOp) ([]BulkResult, error) {
	cmds := make([]lease.Command, len(ops))
	for i, op := range ops {
		k, err := lease.ParseKey(op.Key)
		if err != nil {
			return nil, err
		}
		cmds[i] = lease.Command{Op: op.Op, Key: k, Holder: op.Holder, Duration: op.Duration}
	}
	res, err := s.c.Bulk(ctx, cmds)
	if err != nil {
		return nil, err
	}
	out := make([]BulkResult, len(res))
	for i, r := range res {
		switch {
		case ops[i].Op == lease.OpRevoke:
			out[i].Err = revokeErr(r.Err)
		case r.Err != nil:
			out[i].Err = r.Err
		default:
			out[i].Grant = grantOf(r.Result)
		}
	}
	return out, nil
}

func (s *leaseholdSession) Close() error { return s.c.Close() }
