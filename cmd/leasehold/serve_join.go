package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/logentry"
	"github.com/leasehold/leasehold/server"
	"github.com/leasehold/leasehold/service"
)

// joinCluster asks the cluster behind c.Join to add this server, unless it
// already belongs to a configuration (a restart after joining). It retries
// until the leader accepts or ctx ends: the join address may be starting too.
func joinCluster(ctx context.Context, srv *service.Server, c serverConfig, logger *slog.Logger) error {
	if len(srv.Raft.State().Servers) > 0 {
		logger.Info("already a cluster member; --join ignored")
		return nil
	}
	cl, err := clusterClient(c, c.Join)
	if err != nil {
		return err
	}
	defer cl.Close()
	spec := client.MemberSpec{ID: c.ID, RaftAddr: srv.Raft.RaftAddr(), ClientAddr: srv.ClientAddr(), HTTPAddr: srv.HTTPAddr(), NonVoter: c.JoinAs == "nonvoter"}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := cl.AddMember(actx, spec)
		cancel()
		if err == nil {
			logger.Info("joined the cluster", "via", c.Join, "as", c.JoinAs)
			return nil
		}
		logger.Warn("join failed; retrying", "via", c.Join, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: %w", c.Join, err)
		case <-time.After(min(time.Duration(attempt)*time.Second, 10*time.Second)):
		}
	}
}

// clusterClient is a client of the cluster this server belongs to, for the
// admin calls it makes on its own behalf (join, registering its addresses).
// Its token is LEASEHOLD_TOKEN when set, else an admin token of this
// server's own configuration: the servers of a cluster share their tokens.
func clusterClient(c serverConfig, endpoint string) (*client.Client, error) {
	cfg := client.Config{Endpoints: []string{endpoint}, Token: adminToken(c)}
	if c.TLSCert != "" {
		// The other servers' API certificates are server certificates:
		// verify them with the server CA (raft_tls_ca) when there is one,
		// else with tls_client_ca (a single-CA setup); with neither, the
		// system roots, which a private CA is not in. This server's own
		// certificate is its client certificate, so the servers'
		// tls_client_ca must admit the server CA too (api-client-ca.pem).
		ca := c.RaftTLSCA
		if ca == "" {
			ca = c.TLSClientCA
		}
		t, err := client.TLSConfig(ca, c.TLSCert, c.TLSKey, "")
		if err != nil {
			return nil, err
		}
		cfg.TLS = t
	}
	return client.New(cfg)
}

func adminToken(c serverConfig) string {
	if v := os.Getenv("LEASEHOLD_TOKEN"); v != "" {
		return v
	}
	var toks []string
	for _, t := range c.Tokens {
		if role, tok, _ := cut(t); role == "admin" {
			toks = append(toks, tok)
		}
	}
	if c.TokensFile != "" {
		if m, err := readTokens(c.TokensFile); err == nil {
			for tok, role := range m {
				if role == server.RoleAdmin {
					toks = append(toks, tok)
				}
			}
		}
	}
	if len(toks) == 0 {
		return ""
	}
	return slices.Min(toks) // any admin token works; the same one every time
}

// registerSelf writes this server's client and HTTP addresses into the
// member directory when the directory lacks them. A leader registers only
// itself (when it takes over), so without this the other servers of a
// bootstrapped cluster, or one restarted on new addresses, are listed
// without client addresses (`member list`, leader hints) until each leads
// once. It asks the leader, through its own client address and leader hint,
// to add this server again with its addresses and current suffrage, which
// leaves the Raft configuration as it is. It returns once registered.
func registerSelf(ctx context.Context, srv *service.Server, c serverConfig, logger *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for attempt := 0; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := srv.Raft.State()
		want := logentry.Member{ID: c.ID, ClientAddr: srv.ClientAddr(), HTTPAddr: srv.HTTPAddr()}
		if slices.Contains(st.Directory, want) {
			return
		}
		if st.LeaderID == "" || st.LeaderID == c.ID {
			continue // the leader registers itself
		}
		var me *raft.Server
		for i := range st.Servers {
			if string(st.Servers[i].ID) == c.ID {
				me = &st.Servers[i]
			}
		}
		if me == nil {
			continue // not (yet) a member
		}
		if err := addSelf(ctx, c, st.LeaderAddr, client.MemberSpec{ID: c.ID, RaftAddr: string(me.Address),
			ClientAddr: want.ClientAddr, HTTPAddr: want.HTTPAddr, NonVoter: me.Suffrage != raft.Voter}); err != nil && attempt%10 == 0 {
			logger.Warn("registering this server's addresses failed; retrying", "err", err)
		}
	}
}

func addSelf(ctx context.Context, c serverConfig, leaderAddr string, spec client.MemberSpec) error {
	if leaderAddr == "" {
		return fmt.Errorf("no leader address known yet")
	}
	cl, err := clusterClient(c, leaderAddr)
	if err != nil {
		return err
	}
	defer cl.Close()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = cl.AddMember(actx, spec)
	return err
}

func cut(roleTok string) (string, string, bool) {
	for i := range roleTok {
		if roleTok[i] == ':' {
			return roleTok[:i], roleTok[i+1:], true
		}
	}
	return roleTok, "", false
}

// restoreOnce seeds a new cluster from a snapshot file once this server
// leads; a marker in the data directory keeps a restart from restoring
// again over newer state.
func restoreOnce(ctx context.Context, srv *service.Server, dataDir string, data []byte, logger *slog.Logger) error {
	marker := filepath.Join(dataDir, "restored-from-snapshot")
	if _, err := os.Stat(marker); err == nil {
		logger.Info("snapshot already restored; --restore-snapshot ignored")
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, ok := srv.Raft.Now(); ok {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("restore: this server did not become leader (restore into a single-server --bootstrap, then --join the others)")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := srv.Raft.RestoreSnapshot(wctx, data); err != nil {
		return err
	}
	logger.Info("restored the cluster state from a snapshot", "bytes", len(data))
	return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}
