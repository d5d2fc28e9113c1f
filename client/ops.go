package client

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// Result is the answer to one successful op.
type Result struct {
	Key     lease.Key
	Outcome lease.Outcome
	// Holder, Token, Start and Expiry describe the lease after a claim or
	// extend (and the removed lease for a revoke); zero for pin, unpin and
	// revoke of an absent lease.
	Holder string
	Token  uint64 // fencing token
	// ExpiresIn is Expiry-Now, rounded up to a millisecond (claim, extend).
	ExpiresIn time.Duration
	// Start, Expiry and Now are replicated times; Now is when the op was applied.
	Start, Expiry, Now time.Duration
	// RenewAfter is the server's suggested renew interval (claim, extend;
	// zero if the server gave none): longer when the leader is loaded.
	RenewAfter time.Duration
	// Position and WaitExpiry describe a queued claim (lease.OutcomeQueued):
	// its 1-based place and when it is dropped unless refreshed (replicated time).
	Position   int
	WaitExpiry time.Duration
}

func result(r *pb.OpResult) Result {
	return Result{Key: wire.Key(r.Key), Outcome: wire.Outcome(r.Outcome), Holder: r.Holder, Token: r.Token,
		ExpiresIn: wire.FromMs(r.ExpiresInMs), Start: time.Duration(r.StartNs), Expiry: time.Duration(r.ExpiryNs), Now: time.Duration(r.NowNs),
		RenewAfter: wire.FromMs(r.RenewAfterMs), Position: int(r.Position), WaitExpiry: time.Duration(r.WaitExpiryNs)}
}

func (c *Client) unaryWrite(ctx context.Context, call func(ctx context.Context, api pb.LeaseholdClient, opts ...grpc.CallOption) (*pb.OpResult, error)) (Result, error) {
	var out *pb.OpResult
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := call(ctx, ep.api, grpc.Peer(p))
		out = r
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return result(out), nil
}

// Claim grants key to holder for d if absent, extends it if holder already
// holds it, and fails with lease.ErrDenied (Holder, ExpiresIn set) otherwise.
func (c *Client) Claim(ctx context.Context, key lease.Key, holder string, d time.Duration) (Result, error) {
	req := &pb.ClaimRequest{Key: wire.KeyPB(key), Holder: holder, DurationMs: wire.Ms(d)}
	return c.unaryWrite(ctx, func(ctx context.Context, api pb.LeaseholdClient, o ...grpc.CallOption) (*pb.OpResult, error) {
		return api.Claim(ctx, req, o...)
	})
}

// Extend extends holder's lease on key to d from now; it never shortens it.
// lease.ErrNotHeld if holder does not hold it.
func (c *Client) Extend(ctx context.Context, key lease.Key, holder string, d time.Duration) (Result, error) {
	req := &pb.ExtendRequest{Key: wire.KeyPB(key), Holder: holder, DurationMs: wire.Ms(d)}
	return c.unaryWrite(ctx, func(ctx context.Context, api pb.LeaseholdClient, o ...grpc.CallOption) (*pb.OpResult, error) {
		return api.Extend(ctx, req, o...)
	})
}

// Revoke releases holder's lease on key (success if absent; lease.ErrNotHeld
// if another holder has it).
func (c *Client) Revoke(ctx context.Context, key lease.Key, holder string) (Result, error) {
	req := &pb.RevokeRequest{Key: wire.KeyPB(key), Holder: holder}
	return c.unaryWrite(ctx, func(ctx context.Context, api pb.LeaseholdClient, o ...grpc.CallOption) (*pb.OpResult, error) {
		return api.Revoke(ctx, req, o...)
	})
}

// Pin stops key from expiring until entity unpins it (admin role).
func (c *Client) Pin(ctx context.Context, key lease.Key, entity string) (Result, error) {
	req := &pb.PinRequest{Key: wire.KeyPB(key), Entity: entity}
	return c.unaryWrite(ctx, func(ctx context.Context, api pb.LeaseholdClient, o ...grpc.CallOption) (*pb.OpResult, error) {
		return api.Pin(ctx, req, o...)
	})
}

// Unpin removes entity's pin on key (admin role).
func (c *Client) Unpin(ctx context.Context, key lease.Key, entity string) (Result, error) {
	req := &pb.UnpinRequest{Key: wire.KeyPB(key), Entity: entity}
	return c.unaryWrite(ctx, func(ctx context.Context, api pb.LeaseholdClient, o ...grpc.CallOption) (*pb.OpResult, error) {
		return api.Unpin(ctx, req, o...)
	})
}

// BulkResult is the answer to one op of a Bulk call: Err (a *lease.Error)
// or Result.
type BulkResult struct {
	Result Result
	Err    error
}

// Bulk sends many ops in one request (their Deadline fields are ignored:
// ctx's deadline applies to all) and returns one result per op, in order.
// Per-op failures (denied, not held, invalid) are in BulkResult.Err; an
// error that applies to the whole request is returned as the error, after
// the request as a whole has been retried where allowed.
func (c *Client) Bulk(ctx context.Context, cmds []lease.Command) ([]BulkResult, error) {
	req := &pb.BulkRequest{Ops: wire.CommandsPB(cmds)}
	var resp *pb.BulkResponse
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := ep.api.Bulk(ctx, req, grpc.Peer(p))
		resp = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != len(cmds) {
		return nil, lease.Errorf(lease.CodeUnknown, "server answered %d results for %d ops", len(resp.Results), len(cmds))
	}
	out := make([]BulkResult, len(cmds))
	for i, r := range resp.Results {
		if r.Error != nil {
			out[i].Err = wire.Error(r.Error)
		} else {
			out[i].Result = result(r.Result)
		}
	}
	return out, nil
}

// ReadMeta describes the state a read saw.
type ReadMeta struct {
	AppliedIndex uint64
	Lag          uint64 // entries behind the last index the replica knew of
	Now          time.Duration
	ServerID     string
}

func (c *Client) meta(m *pb.ReadMeta, ep *endpoint) ReadMeta {
	ep.setID(m.GetServerId())
	return ReadMeta{AppliedIndex: m.GetAppliedIndex(), Lag: m.GetLag(), Now: time.Duration(m.GetNowNs()), ServerID: m.GetServerId()}
}

// Lease is a lease as a read saw it.
type Lease struct {
	lease.Info
	// ExpiresIn is the time left at the read (0 for a pinned lease past its expiry).
	ExpiresIn time.Duration
}

func leaseOf(i *pb.LeaseInfo) Lease {
	return Lease{Info: wire.Info(i), ExpiresIn: wire.FromMs(i.ExpiresInMs)}
}

// ReadOption modifies a read.
type ReadOption func(*readOpts)

type readOpts struct{ stale bool }

// Stale lets any server answer from its applied state (see ReadMeta.Lag)
// instead of the leader after confirming its leadership.
func Stale() ReadOption { return func(o *readOpts) { o.stale = true } }

func readKind(opts []ReadOption) (kind, bool) {
	var o readOpts
	for _, f := range opts {
		f(&o)
	}
	if o.stale {
		return kindStale, true
	}
	return kindRead, false
}

// Get reads key; the lease is nil when the key is not held.
func (c *Client) Get(ctx context.Context, key lease.Key, opts ...ReadOption) (*Lease, ReadMeta, error) {
	k, stale := readKind(opts)
	req := &pb.GetRequest{Key: wire.KeyPB(key), Stale: stale}
	var resp *pb.GetResponse
	var meta ReadMeta
	err := c.do(ctx, k, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := ep.api.Get(ctx, req, grpc.Peer(p))
		if err == nil {
			resp, meta = r, c.meta(r.Meta, ep)
		}
		return err
	})
	if err != nil || !resp.Found {
		return nil, meta, err
	}
	l := leaseOf(resp.Lease)
	return &l, meta, nil
}

// ListOptions select a page of leases.
type ListOptions struct {
	Namespace string // empty: every namespace
	Group     string // empty: every group (needs Namespace)
	PageSize  int    // 0: the server's default
	PageToken string // from the previous page
	Stale     bool
}

// ListPage is one page of leases, in key order.
type ListPage struct {
	Leases        []Lease
	NextPageToken string // empty on the last page
	Meta          ReadMeta
}

// List reads one page of leases.
func (c *Client) List(ctx context.Context, o ListOptions) (ListPage, error) {
	k := kindRead
	if o.Stale {
		k = kindStale
	}
	req := &pb.ListRequest{Namespace: o.Namespace, Group: o.Group, Stale: o.Stale, PageSize: int32(min(o.PageSize, 1<<30)), PageToken: o.PageToken}
	var page ListPage
	err := c.do(ctx, k, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := ep.api.List(ctx, req, grpc.Peer(p))
		if err != nil {
			return err
		}
		page = ListPage{NextPageToken: r.NextPageToken, Meta: c.meta(r.Meta, ep), Leases: make([]Lease, len(r.Leases))}
		for i, l := range r.Leases {
			page.Leases[i] = leaseOf(l)
		}
		return nil
	})
	return page, err
}

// ListAll reads every page. Pages may come from different reads, so the
// result is not one snapshot.
func (c *Client) ListAll(ctx context.Context, o ListOptions) ([]Lease, ReadMeta, error) {
	var all []Lease
	for {
		page, err := c.List(ctx, o)
		if err != nil {
			return all, page.Meta, err
		}
		all = append(all, page.Leases...)
		if page.NextPageToken == "" {
			return all, page.Meta, nil
		}
		o.PageToken = page.NextPageToken
	}
}

// PinnedKey is a pinned key with its pinning entities.
type PinnedKey struct {
	Key      lease.Key
	Entities []string
}

// Pinned reads every pinned key, in key order.
func (c *Client) Pinned(ctx context.Context, opts ...ReadOption) ([]PinnedKey, ReadMeta, error) {
	k, stale := readKind(opts)
	var out []PinnedKey
	var meta ReadMeta
	err := c.do(ctx, k, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := ep.api.Pinned(ctx, &pb.PinnedRequest{Stale: stale}, grpc.Peer(p))
		if err != nil {
			return err
		}
		meta, out = c.meta(r.Meta, ep), make([]PinnedKey, len(r.Pins))
		for i, pk := range r.Pins {
			out[i] = PinnedKey{Key: wire.Key(pk.Key), Entities: pk.Entities}
		}
		return nil
	})
	return out, meta, err
}
