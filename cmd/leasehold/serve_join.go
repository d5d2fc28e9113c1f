package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/server"
	"github.com/leasehold/leasehold/lease"
)

// joinCluster asks the cluster behind c.Join to add this server, unless it
// already belongs to a configuration (a restart after joining). It retries
// until the leader accepts or ctx ends: the join address may be starting too.
func joinCluster(ctx context.Context, srv *server.Server, c serverConfig, logger *slog.Logger) error {
	if len(srv.Raft.State().Servers) > 0 {
		// Whether it still is a member is stayMember's question.
		logger.Info("this server has a cluster configuration; --join is not needed")
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
				if role == grpcserver.RoleAdmin {
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

// removedError: this server is not in the cluster's configuration. Exit
// code 9, so a supervisor does not restart it in a loop.
type removedError struct{ msg string }

func (e removedError) Error() string { return e.msg }

func (e removedError) ExitCode() int {
	fmt.Fprintln(os.Stderr, "leasehold server:", e.msg)
	return 9
}

// askClusterAfter is how long a server that lists itself but hears from no
// leader waits before asking the cluster whether it is still a member (a
// server removed while it was down never hears from a leader again).
const askClusterAfter = 5 * time.Second

// stayMember registers this server's client and HTTP addresses in the
// member directory, and finds out when this server is no longer a member.
// A leader registers only itself (when it takes over), so without this the
// other servers of a bootstrapped cluster, or one restarted on new
// addresses, are listed without client addresses (`member list`, leader
// hints) until each leads once. Registration goes to the leader as
// RegisterMember, which only writes the directory and is refused for a
// server not in the configuration: it never adds this server back after an
// admin removed it.
//
// It returns nil once registered and following a leader, and a removedError
// when the cluster's leader does not list this server: removed while
// running (its own configuration no longer lists it) or while down (it
// lists itself but no leader talks to it). Rejoining is explicit: an empty
// data directory and --join.
func stayMember(ctx context.Context, srv *server.Server, c serverConfig, logger *slog.Logger) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st := srv.Raft.State()
		if len(st.Servers) == 0 {
			continue // not bootstrapped nor joined yet: waiting for `member add`
		}
		want := logentry.Member{ID: c.ID, ClientAddr: srv.ClientAddr(), HTTPAddr: srv.HTTPAddr()}
		var me *raft.Server
		for i := range st.Servers {
			if string(st.Servers[i].ID) == c.ID {
				me = &st.Servers[i]
			}
		}
		if me == nil || (st.LeaderID == "" && time.Since(start) > askClusterAfter) {
			removed, err := removedFromCluster(ctx, c, st)
			if err != nil {
				if attempt%10 == 0 {
					logger.Warn("cannot ask the cluster whether this server is a member; retrying", "err", err)
				}
				continue
			}
			if removed {
				return removedError{fmt.Sprintf("this server (%s) was removed from the cluster: the leader's configuration does not list it. "+
					"To rejoin, move its data directory (%s) away and start it again with --join", c.ID, c.DataDir)}
			}
			continue // a member still catching up
		}
		if st.LeaderID == "" || st.LeaderID == c.ID {
			continue // no leader yet, or the leader registers itself
		}
		if slices.Contains(st.Directory, want) {
			return nil
		}
		err := registerSelf(ctx, c, st.LeaderAddr, client.MemberSpec{ID: c.ID, RaftAddr: string(me.Address),
			ClientAddr: want.ClientAddr, HTTPAddr: want.HTTPAddr})
		if notAMember(err) {
			// The leader's configuration lacks us: ask again to be sure.
			if removed, err := removedFromCluster(ctx, c, st); err == nil && removed {
				return removedError{fmt.Sprintf("this server (%s) was removed from the cluster. To rejoin, move its data directory (%s) away and start it again with --join", c.ID, c.DataDir)}
			}
		}
		if err != nil && attempt%10 == 0 {
			logger.Warn("registering this server's addresses failed; retrying", "err", err)
		}
	}
}

func registerSelf(ctx context.Context, c serverConfig, leaderAddr string, spec client.MemberSpec) error {
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
	_, err = cl.RegisterMember(actx, spec)
	return err
}

// notAMember reports whether err is RegisterMember's "not in the
// configuration" refusal.
func notAMember(err error) bool {
	var le *lease.Error
	return errors.As(err, &le) && le.Code == lease.CodeInvalidArgument && le.Field == "id"
}

// removedFromCluster asks the cluster's leader whether its configuration
// lists this server: through --join and the directory's client addresses
// it finds the leader's client address, then asks the leader itself (a
// follower's view may lag behind the change that added us). An error means
// no leader could be asked.
func removedFromCluster(ctx context.Context, c serverConfig, st replica.State) (bool, error) {
	var eps []string
	if c.Join != "" {
		eps = append(eps, c.Join)
	}
	for _, m := range st.Directory {
		if m.ID != c.ID && m.ClientAddr != "" {
			eps = append(eps, m.ClientAddr)
		}
	}
	if len(eps) == 0 {
		return false, errors.New("no other server's client address known (no --join, empty directory)")
	}
	list := func(ep string) ([]client.Member, error) {
		cl, err := clusterClient(c, ep)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return cl.ListMembers(actx)
	}
	var lastErr error
	for _, ep := range eps {
		ms, err := list(ep)
		if err != nil {
			lastErr = err
			continue
		}
		leader := ""
		for _, m := range ms {
			if m.Leader {
				leader = m.ClientAddr
			}
		}
		if leader == "" {
			lastErr = fmt.Errorf("%s knows no leader", ep)
			continue
		}
		if leader != ep {
			if ms, err = list(leader); err != nil {
				lastErr = err
				continue
			}
		}
		return !slices.ContainsFunc(ms, func(m client.Member) bool { return m.ID == c.ID }), nil
	}
	return false, lastErr
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
func restoreOnce(ctx context.Context, srv *server.Server, dataDir string, data []byte, logger *slog.Logger) error {
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
