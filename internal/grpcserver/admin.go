package grpcserver

import (
	"context"
	"sort"

	"google.golang.org/grpc"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/internal/settings"
	"github.com/leasehold/leasehold/lease"
)

// AdminBackend is what the Admin service needs from a node. Errors are
// *lease.Error (CodeNotLeader with the hint for changes on a follower).
type AdminBackend interface {
	// Settings returns the settings in force here and the replicated
	// settings version they are at (0: no settings entry yet).
	Settings() (s settings.Settings, version uint64)
	// SetSettings applies KEY -> VALUE changes to the current settings,
	// validates and replicates them (leader only), compare-and-set on the
	// settings version (basedOn, when given, is the version the caller
	// read), and returns the result and its version.
	SetSettings(ctx context.Context, changes map[string]string, basedOn *uint64) (settings.Settings, uint64, error)
	// AddMember adds a server to the Raft configuration and the directory.
	AddMember(ctx context.Context, m Member) error
	// RegisterMember writes a configured server's addresses into the
	// directory; it never changes the Raft configuration.
	RegisterMember(ctx context.Context, m Member) error
	// RemoveMember removes a server from the Raft configuration.
	RemoveMember(ctx context.Context, id string) error
	// Snapshot returns the leader's state machine snapshot after a
	// linearizable barrier, with the applied index it reflects.
	Snapshot(ctx context.Context) (data []byte, index uint64, err error)
}

// snapshotChunk keeps stream messages well under the default message cap.
const snapshotChunk = 1 << 20

// Admin is the leasehold.v1.Admin gRPC service. Every method needs the admin
// role: the auth interceptor opens only the methods listed in agentMethods.
type Admin struct {
	pb.UnimplementedAdminServer
	b  AdminBackend
	st Backend
}

// RegisterAdmin registers the Admin service on s's gRPC server, before Serve.
func RegisterAdmin(s *Server, b AdminBackend) {
	pb.RegisterAdminServer(s.grpc, &Admin{b: b, st: s.b})
}

func settingsPB(s settings.Settings, version uint64) *pb.SettingsResponse {
	m := s.Map()
	out := &pb.SettingsResponse{Replicated: version > 0, Version: version}
	for _, k := range settings.Keys() {
		out.Settings = append(out.Settings, &pb.Setting{Key: k, Value: m[k]})
	}
	return out
}

func (a *Admin) GetSettings(ctx context.Context, _ *pb.GetSettingsRequest) (*pb.SettingsResponse, error) {
	s, version := a.b.Settings()
	return settingsPB(s, version), nil
}

func (a *Admin) SetSettings(ctx context.Context, req *pb.SetSettingsRequest) (*pb.SettingsResponse, error) {
	if len(req.Values) == 0 {
		return nil, statusErr(lease.InvalidArgument("values", "no settings to change"))
	}
	s, version, err := a.b.SetSettings(ctx, req.Values, req.Version)
	if err != nil {
		return nil, statusErr(err)
	}
	return settingsPB(s, version), nil
}

func (a *Admin) members() *pb.MembersResponse {
	st := a.st.Status()
	out := &pb.MembersResponse{}
	for _, m := range st.Members {
		out.Members = append(out.Members, &pb.AdminMember{Id: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HttpAddr: m.HTTPAddr, Voter: m.Voter, Leader: m.Leader})
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Id < out.Members[j].Id })
	return out
}

func (a *Admin) AddMember(ctx context.Context, req *pb.AddMemberRequest) (*pb.MembersResponse, error) {
	if req.Id == "" {
		return nil, statusErr(lease.InvalidArgument("id", "member ID is required"))
	}
	if req.RaftAddr == "" {
		return nil, statusErr(lease.InvalidArgument("raft_addr", "raft address is required"))
	}
	m := Member{ID: req.Id, RaftAddr: req.RaftAddr, ClientAddr: req.ClientAddr, HTTPAddr: req.HttpAddr, Voter: !req.Nonvoter}
	if err := a.b.AddMember(ctx, m); err != nil {
		return nil, statusErr(err)
	}
	return a.members(), nil
}

func (a *Admin) RegisterMember(ctx context.Context, req *pb.RegisterMemberRequest) (*pb.MembersResponse, error) {
	if req.Id == "" {
		return nil, statusErr(lease.InvalidArgument("id", "member ID is required"))
	}
	if req.RaftAddr == "" {
		return nil, statusErr(lease.InvalidArgument("raft_addr", "raft address is required"))
	}
	m := Member{ID: req.Id, RaftAddr: req.RaftAddr, ClientAddr: req.ClientAddr, HTTPAddr: req.HttpAddr}
	if err := a.b.RegisterMember(ctx, m); err != nil {
		return nil, statusErr(err)
	}
	return a.members(), nil
}

func (a *Admin) RemoveMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.MembersResponse, error) {
	if req.Id == "" {
		return nil, statusErr(lease.InvalidArgument("id", "member ID is required"))
	}
	if err := a.b.RemoveMember(ctx, req.Id); err != nil {
		return nil, statusErr(err)
	}
	return a.members(), nil
}

func (a *Admin) ListMembers(ctx context.Context, _ *pb.ListMembersRequest) (*pb.MembersResponse, error) {
	return a.members(), nil
}

func (a *Admin) SaveSnapshot(_ *pb.SaveSnapshotRequest, stream grpc.ServerStreamingServer[pb.SnapshotChunk]) error {
	data, index, err := a.b.Snapshot(stream.Context())
	if err != nil {
		return statusErr(err)
	}
	first := true
	for len(data) > 0 || first {
		n := min(len(data), snapshotChunk)
		c := &pb.SnapshotChunk{Data: data[:n]}
		if first {
			c.Size, c.Index, first = uint64(len(data)), index, false
		}
		if err := stream.Send(c); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

var _ pb.AdminServer = (*Admin)(nil)
