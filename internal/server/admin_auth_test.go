package server_test

import (
	"testing"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/lease"
)

func TestAdminMethodsNeedAdmin(t *testing.T) {
	c := startCluster(t, devcluster.Options{Size: 1, Server: grpcserver.Options{Tokens: map[string]grpcserver.Role{"ag": grpcserver.RoleAgent, "ad": grpcserver.RoleAdmin}}})
	addr := c.Members[0].ClientAddr
	agent := newClient(t, client.Config{Token: "ag"}, addr)
	if _, err := agent.SetSettings(ctxT(t), map[string]string{"max_duration": "1m"}); lease.CodeOf(err) != lease.CodePermissionDenied {
		t.Errorf("agent SetSettings: %v", err)
	}
	if _, err := agent.GetSettings(ctxT(t)); lease.CodeOf(err) != lease.CodePermissionDenied {
		t.Errorf("agent GetSettings: %v", err)
	}
	if _, err := agent.ListMembers(ctxT(t)); lease.CodeOf(err) != lease.CodePermissionDenied {
		t.Errorf("agent ListMembers: %v", err)
	}
	if _, _, err := agent.SaveSnapshot(ctxT(t)); lease.CodeOf(err) != lease.CodePermissionDenied {
		t.Errorf("agent SaveSnapshot: %v", err)
	}
	admin := newClient(t, client.Config{Token: "ad"}, addr)
	if _, err := admin.SetSettings(ctxT(t), map[string]string{"max_duration": "1m"}); err != nil {
		t.Errorf("admin SetSettings: %v", err)
	}
	if _, _, err := admin.SaveSnapshot(ctxT(t)); err != nil {
		t.Errorf("admin SaveSnapshot: %v", err)
	}
}
