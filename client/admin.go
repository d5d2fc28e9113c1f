package client

import (
	"bytes"
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/lease"
)

// Setting is one cluster setting as text.
type Setting struct {
	Key, Value string
}

// Settings are the cluster settings as a server reports them.
type Settings struct {
	Settings []Setting // sorted by key
	// Replicated is false while the cluster never changed its settings (the
	// built-in defaults are in force).
	Replicated bool
	// Version is the replicated settings version these settings are at;
	// pass it to SetSettingsFrom to change them only if no one else did.
	Version uint64
}

func settingsOf(r *pb.SettingsResponse) *Settings {
	out := &Settings{Replicated: r.Replicated, Version: r.Version}
	for _, s := range r.Settings {
		out.Settings = append(out.Settings, Setting{Key: s.Key, Value: s.Value})
	}
	return out
}

func admin(ep *endpoint) pb.AdminClient { return pb.NewAdminClient(ep.conn) }

// GetSettings reads the settings in force (from the leader when known).
func (c *Client) GetSettings(ctx context.Context) (*Settings, error) {
	var out *Settings
	err := c.do(ctx, kindRead, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := admin(ep).GetSettings(ctx, &pb.GetSettingsRequest{}, grpc.Peer(p))
		if err == nil {
			out = settingsOf(r)
		}
		return err
	})
	return out, err
}

// SetSettings changes settings (KEY -> VALUE) on the leader, which
// replicates them; it returns every setting after the change. Admin only.
// The change is made on top of the settings the leader reads; use
// SetSettingsFrom to base it on settings you read.
func (c *Client) SetSettings(ctx context.Context, values map[string]string) (*Settings, error) {
	return c.setSettings(ctx, values, nil)
}

// SetSettingsFrom is SetSettings based on settings version version (from
// GetSettings): it is refused (CodeInvalidArgument, field
// "settings_version") if the settings changed since.
func (c *Client) SetSettingsFrom(ctx context.Context, version uint64, values map[string]string) (*Settings, error) {
	return c.setSettings(ctx, values, &version)
}

func (c *Client) setSettings(ctx context.Context, values map[string]string, version *uint64) (*Settings, error) {
	var out *Settings
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := admin(ep).SetSettings(ctx, &pb.SetSettingsRequest{Values: values, Version: version}, grpc.Peer(p))
		if err == nil {
			out = settingsOf(r)
		}
		return err
	})
	return out, err
}

// MemberSpec describes a server to add.
type MemberSpec struct {
	ID, RaftAddr, ClientAddr, HTTPAddr string
	NonVoter                           bool
}

func membersOf(r *pb.MembersResponse) []Member {
	var out []Member
	for _, m := range r.Members {
		out = append(out, Member{ID: m.Id, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr, HTTPAddr: m.HttpAddr, Voter: m.Voter, Leader: m.Leader})
	}
	return out
}

// AddMember adds a server to the cluster (on the leader). Admin only.
func (c *Client) AddMember(ctx context.Context, m MemberSpec) ([]Member, error) {
	var out []Member
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := admin(ep).AddMember(ctx, &pb.AddMemberRequest{Id: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HttpAddr: m.HTTPAddr, Nonvoter: m.NonVoter}, grpc.Peer(p))
		if err == nil {
			out = membersOf(r)
		}
		return err
	})
	return out, err
}

// RegisterMember writes a server's client and HTTP addresses into the
// member directory (on the leader). It never adds a server: for one that is
// not in the configuration at m.RaftAddr it fails with invalid_argument,
// field "id". Admin only; servers call it for themselves.
func (c *Client) RegisterMember(ctx context.Context, m MemberSpec) ([]Member, error) {
	var out []Member
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := admin(ep).RegisterMember(ctx, &pb.RegisterMemberRequest{Id: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HttpAddr: m.HTTPAddr}, grpc.Peer(p))
		if err == nil {
			out = membersOf(r)
		}
		return err
	})
	return out, err
}

// RemoveMember removes a server from the cluster (on the leader). Admin only.
func (c *Client) RemoveMember(ctx context.Context, id string) ([]Member, error) {
	var out []Member
	err := c.do(ctx, kindWrite, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := admin(ep).RemoveMember(ctx, &pb.RemoveMemberRequest{Id: id}, grpc.Peer(p))
		if err == nil {
			out = membersOf(r)
		}
		return err
	})
	return out, err
}

// ListMembers lists the cluster's servers as the leader (when known) sees them.
func (c *Client) ListMembers(ctx context.Context) ([]Member, error) {
	var out []Member
	err := c.do(ctx, kindRead, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		r, err := admin(ep).ListMembers(ctx, &pb.ListMembersRequest{}, grpc.Peer(p))
		if err == nil {
			out = membersOf(r)
		}
		return err
	})
	return out, err
}

// SaveSnapshot fetches a snapshot of the leader's state. Admin only.
func (c *Client) SaveSnapshot(ctx context.Context) (data []byte, index uint64, err error) {
	err = c.do(ctx, kindRead, func(ctx context.Context, ep *endpoint, p *peer.Peer) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := admin(ep).SaveSnapshot(ctx, &pb.SaveSnapshotRequest{}, grpc.Peer(p))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		for {
			ch, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if ch.Size > 0 {
				index = ch.Index
				buf.Grow(int(ch.Size))
			}
			buf.Write(ch.Data)
		}
		data = buf.Bytes()
		return nil
	})
	if err == nil && len(data) == 0 {
		err = lease.Errorf(lease.CodeUnknown, "empty snapshot")
	}
	return data, index, err
}
