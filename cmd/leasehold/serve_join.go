package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/leasehold/leasehold/client"
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
	tok := ""
	if len(c.Tokens) > 0 {
		_, tok, _ = cut(c.Tokens[0])
	}
	if v := os.Getenv("LEASEHOLD_TOKEN"); v != "" {
		tok = v // an admin token for the cluster joined
	}
	cfg := client.Config{Endpoints: []string{c.Join}, Token: tok}
	if c.TLSCert != "" {
		// The cluster's API uses the same CA as ours.
		t, err := client.TLSConfig(c.TLSClientCA, c.TLSCert, c.TLSKey, "")
		if err != nil {
			return err
		}
		cfg.TLS = t
	}
	cl, err := client.New(cfg)
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
