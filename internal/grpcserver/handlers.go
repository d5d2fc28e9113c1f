package grpcserver

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

// write validates one command, runs it and converts its result.
func (s *Server) write(ctx context.Context, c lease.Command) (*pb.OpResult, error) {
	if err := c.Validate(s.limits()); err != nil {
		return nil, statusErr(err)
	}
	if (c.Op == lease.OpPin || c.Op == lease.OpUnpin) && roleOf(ctx) != RoleAdmin {
		// The interceptor already refuses Pin/Unpin to agents; this guards
		// against the method table and the handlers drifting apart.
		return nil, errorf(lease.CodePermissionDenied, "pin and unpin need the admin role")
	}
	res, err := s.b.Write(ctx, []lease.Command{c})
	if err != nil {
		return nil, statusErr(err)
	}
	if len(res) != 1 {
		return nil, errorf(lease.CodeUnknown, "backend returned %d results for 1 command", len(res))
	}
	if err := res[0].Err(); err != nil {
		return nil, statusErr(err)
	}
	return s.resultPB(c.Key, &res[0]), nil
}

func (s *Server) Claim(ctx context.Context, r *pb.ClaimRequest) (*pb.OpResult, error) {
	return s.write(ctx, lease.Command{Op: lease.OpClaim, Key: wire.Key(r.Key), Holder: r.Holder, Duration: wire.FromMs(r.DurationMs)})
}

func (s *Server) Extend(ctx context.Context, r *pb.ExtendRequest) (*pb.OpResult, error) {
	return s.write(ctx, lease.Command{Op: lease.OpExtend, Key: wire.Key(r.Key), Holder: r.Holder, Duration: wire.FromMs(r.DurationMs)})
}

func (s *Server) Revoke(ctx context.Context, r *pb.RevokeRequest) (*pb.OpResult, error) {
	return s.write(ctx, lease.Command{Op: lease.OpRevoke, Key: wire.Key(r.Key), Holder: r.Holder})
}

func (s *Server) Pin(ctx context.Context, r *pb.PinRequest) (*pb.OpResult, error) {
	return s.write(ctx, lease.Command{Op: lease.OpPin, Key: wire.Key(r.Key), Holder: r.Entity})
}

func (s *Server) Unpin(ctx context.Context, r *pb.UnpinRequest) (*pb.OpResult, error) {
	return s.write(ctx, lease.Command{Op: lease.OpUnpin, Key: wire.Key(r.Key), Holder: r.Entity})
}

// Bulk validates each op on its own and sends the valid ones to the backend
// in one Write, so they can share a log entry. An error that applies to the
// whole write (not leader, overloaded, ...) fails the RPC: every op failed
// alike, and the client retries the request as a unit.
func (s *Server) Bulk(ctx context.Context, r *pb.BulkRequest) (*pb.BulkResponse, error) {
	if len(r.Ops) > s.opts.MaxBulkOps {
		return nil, statusErr(lease.InvalidArgument("ops", "%d ops in one request; the limit is %d", len(r.Ops), s.opts.MaxBulkOps))
	}
	admin := roleOf(ctx) == RoleAdmin
	limits := s.limits()
	// The response's messages come from slabs: a few allocations per call
	// rather than three per op.
	results := make([]pb.BulkResult, len(r.Ops))
	out := make([]*pb.BulkResult, len(r.Ops))
	for i := range out {
		out[i] = &results[i]
	}
	cmds := make([]lease.Command, 0, len(r.Ops))
	idx := make([]int, 0, len(r.Ops))
	for i, op := range r.Ops {
		c := wire.Command(op)
		if !admin && (c.Op == lease.OpPin || c.Op == lease.OpUnpin) {
			// Refuse the whole request: nothing is written for a caller
			// that asked for something it may not do.
			return nil, errorf(lease.CodePermissionDenied, "op %d: pin and unpin need the admin role", i)
		}
		if err := c.Validate(limits); err != nil {
			results[i].Error = wire.ErrorPB(err)
			continue
		}
		cmds = append(cmds, c)
		idx = append(idx, i)
	}
	if len(cmds) > 0 {
		res, err := s.b.Write(ctx, cmds)
		if err != nil {
			return nil, statusErr(err)
		}
		if len(res) != len(cmds) {
			return nil, errorf(lease.CodeUnknown, "backend returned %d results for %d commands", len(res), len(cmds))
		}
		slab := wire.NewResultSlab(len(cmds))
		for j, i := range idx {
			if err := res[j].Err(); err != nil {
				results[i].Error = wire.ErrorPB(err)
			} else {
				results[i].Result = s.withRenewAfter(slab.ResultPB(cmds[j].Key, &res[j]), &res[j])
			}
		}
	}
	return &pb.BulkResponse{Results: out}, nil
}

func (s *Server) meta(m ReadMeta) *pb.ReadMeta {
	return &pb.ReadMeta{AppliedIndex: m.AppliedIndex, Lag: m.Lag, NowNs: int64(m.Now), ServerId: s.serverID()}
}

func (s *Server) Get(ctx context.Context, r *pb.GetRequest) (*pb.GetResponse, error) {
	k := wire.Key(r.Key)
	if err := k.Validate(); err != nil {
		return nil, statusErr(err)
	}
	var info lease.Info
	var found bool
	meta, err := s.b.Read(ctx, r.Stale, func(m *fsm.Machine, at time.Duration) {
		info, found = m.Get(k, at)
	})
	if err != nil {
		return nil, statusErr(err)
	}
	resp := &pb.GetResponse{Found: found, Meta: s.meta(meta)}
	if found {
		resp.Lease = wire.InfoPB(&info, meta.Now)
	}
	return resp, nil
}

// validatePrefix checks a namespace/group filter: each part is empty or a
// valid name, and a group needs a namespace.
func validatePrefix(ns, grp, name string) error {
	parts := []struct{ field, v string }{{"namespace", ns}, {"group", grp}, {"name", name}}
	for i, p := range parts {
		if p.v == "" {
			continue
		}
		if i > 0 && parts[i-1].v == "" {
			return lease.InvalidArgument(p.field, "%s is set but %s is empty", p.field, parts[i-1].field)
		}
		if err := lease.ValidateName(p.field, p.v); err != nil {
			return err
		}
		if i < 2 && strings.IndexByte(p.v, '/') >= 0 {
			return lease.InvalidArgument(p.field, "%s must not contain '/'", p.field)
		}
	}
	return nil
}

// Page tokens are the last key of the previous page, NUL-separated (names
// cannot contain NUL), base64url-encoded: opaque to callers, stateless here.
func encodePageToken(k lease.Key) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.Namespace + "\x00" + k.Group + "\x00" + k.Name))
}

func decodePageToken(tok string) (lease.Key, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		return lease.Key{}, lease.InvalidArgument("page_token", "malformed page token")
	}
	k := lease.Key{Namespace: parts[0], Group: parts[1], Name: parts[2]}
	if k.Validate() != nil {
		return lease.Key{}, lease.InvalidArgument("page_token", "malformed page token")
	}
	return k, nil
}

func (s *Server) List(ctx context.Context, r *pb.ListRequest) (*pb.ListResponse, error) {
	if err := validatePrefix(r.Namespace, r.Group, ""); err != nil {
		return nil, statusErr(err)
	}
	size := int(r.PageSize)
	switch {
	case size < 0:
		return nil, statusErr(lease.InvalidArgument("page_size", "page_size is negative"))
	case size == 0:
		size = s.opts.DefaultPageSize
	case size > s.opts.MaxPageSize:
		size = s.opts.MaxPageSize
	}
	var after lease.Key
	if r.PageToken != "" {
		k, err := decodePageToken(r.PageToken)
		if err != nil {
			return nil, statusErr(err)
		}
		after = k
	}
	var infos []lease.Info
	meta, err := s.b.Read(ctx, r.Stale, func(m *fsm.Machine, at time.Duration) {
		// One more than a page tells whether another page follows.
		infos = m.List(r.Namespace, r.Group, after, size+1, at)
	})
	if err != nil {
		return nil, statusErr(err)
	}
	resp := &pb.ListResponse{Meta: s.meta(meta)}
	if len(infos) > size {
		infos = infos[:size]
		resp.NextPageToken = encodePageToken(infos[size-1].Key)
	}
	resp.Leases = make([]*pb.LeaseInfo, len(infos))
	for i := range infos {
		resp.Leases[i] = wire.InfoPB(&infos[i], meta.Now)
	}
	return resp, nil
}

func (s *Server) Pinned(ctx context.Context, r *pb.PinnedRequest) (*pb.PinnedResponse, error) {
	var pins map[lease.Key][]string
	meta, err := s.b.Read(ctx, r.Stale, func(m *fsm.Machine, _ time.Duration) { pins = m.Pinned() })
	if err != nil {
		return nil, statusErr(err)
	}
	keys := make([]lease.Key, 0, len(pins))
	for k := range pins {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b lease.Key) int {
		if a.Less(b) {
			return -1
		}
		if b.Less(a) {
			return 1
		}
		return 0
	})
	resp := &pb.PinnedResponse{Meta: s.meta(meta), Pins: make([]*pb.PinnedKey, len(keys))}
	for i, k := range keys {
		resp.Pins[i] = &pb.PinnedKey{Key: wire.KeyPB(k), Entities: pins[k]}
	}
	return resp, nil
}

func (s *Server) Watch(r *pb.WatchRequest, stream pb.Leasehold_WatchServer) error {
	w, ok := s.b.(Watcher)
	if !ok {
		// Unimplemented, not a Leasehold code: the client maps it to
		// client.ErrWatchUnsupported and does not retry.
		return status.Error(codes.Unimplemented, "watch is not supported by this server's backend")
	}
	if err := validatePrefix(r.Namespace, r.Group, r.Name); err != nil {
		return statusErr(err)
	}
	release, err := s.watches.acquire(stream.Context())
	if err != nil {
		return statusErr(err)
	}
	defer release()
	created := false
	f := WatchFilter{Namespace: r.Namespace, Group: r.Group, Name: r.Name, Extends: r.Extends}
	err = w.Watch(stream.Context(), r.StartIndex, f, func(index uint64, batch []lease.Event) error {
		resp := &pb.WatchResponse{Created: !created, Index: index, Events: make([]*pb.Event, len(batch))}
		created = true
		for i := range batch {
			resp.Events[i] = wire.EventPB(&batch[i])
		}
		return stream.Send(resp)
	})
	if err != nil {
		return statusErr(err)
	}
	return nil
}

func (s *Server) Status(_ context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st := s.b.Status()
	resp := &pb.StatusResponse{Id: st.ID, State: st.State, LeaderId: st.LeaderID, LeaderAddr: st.LeaderAddr,
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, LastIndex: st.LastIndex,
		NowNs: int64(st.Now), Leases: int64(st.Leases), QueueDepth: int64(st.QueueDepth)}
	for _, m := range st.Members {
		resp.Members = append(resp.Members, &pb.Member{Id: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HttpAddr: m.HTTPAddr, Voter: m.Voter, Leader: m.Leader})
	}
	return resp, nil
}
