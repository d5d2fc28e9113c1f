package server_test

import (
	"errors"
	"testing"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Registering a server's addresses only writes the member directory: it
// never adds a server, so a removed server's registration (or one racing
// with its removal) cannot bring it back.
func TestRegisterMemberNeverChangesMembership(t *testing.T) {
	dir := t.TempDir()
	s1 := startOne(t, "r1", dir, nil)
	defer s1.Close()
	bootstrapAlone(t, s1)
	s2 := startOne(t, "r2", dir, nil)
	defer s2.Close()
	cl := newClient(t, client.Config{}, s1.ClientAddr())
	if _, err := cl.AddMember(ctxT(t), client.MemberSpec{ID: "r2", RaftAddr: s2.Raft.RaftAddr(), NonVoter: true}); err != nil {
		t.Fatal(err)
	}
	// A member registers new addresses: directory only.
	ms, err := cl.RegisterMember(ctxT(t), client.MemberSpec{ID: "r2", RaftAddr: s2.Raft.RaftAddr(), ClientAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[1].ID != "r2" || ms[1].ClientAddr != "127.0.0.1:1" || ms[1].Voter {
		t.Fatalf("after registering r2: %+v", ms)
	}
	notAMember := func(err error) bool {
		var le *lease.Error
		return errors.As(err, &le) && le.Code == lease.CodeInvalidArgument && le.Field == "id"
	}
	// The wrong Raft address, an unknown server, a removed server: refused,
	// and the configuration is unchanged.
	if _, err := cl.RegisterMember(ctxT(t), client.MemberSpec{ID: "r2", RaftAddr: "127.0.0.1:9", ClientAddr: "127.0.0.1:3"}); !notAMember(err) {
		t.Errorf("r2 at the wrong raft address: %v", err)
	}
	if _, err := cl.RegisterMember(ctxT(t), client.MemberSpec{ID: "r9", RaftAddr: "127.0.0.1:9", ClientAddr: "127.0.0.1:3"}); !notAMember(err) {
		t.Errorf("unknown r9: %v", err)
	}
	if _, err := cl.RemoveMember(ctxT(t), "r2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RegisterMember(ctxT(t), client.MemberSpec{ID: "r2", RaftAddr: s2.Raft.RaftAddr(), ClientAddr: "127.0.0.1:1"}); !notAMember(err) {
		t.Errorf("removed r2: %v", err)
	}
	if servers := s1.Raft.State().Servers; len(servers) != 1 || servers[0].ID != "r1" {
		t.Fatalf("configuration after registrations: %+v", servers)
	}
}
