package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/server"
	"github.com/leasehold/leasehold/lease"
)

func init() {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one Leasehold server",
		Long: `Run one Leasehold server. Restarting it with the same --data-dir recovers its
state. To create a new cluster, start every server with the same --bootstrap
list; later restarts ignore it. To add a server to a running cluster, start it
with --join pointing at any member's client address. A server removed from
its cluster and started again with its old data directory says so and exits
with code 9; to rejoin, start it with an empty data directory and --join.

Without tokens every caller is admin: the server then refuses a client
address that is not loopback unless --insecure-allow-open is given.

Settings come from the JSON --config file, then the flags given on the
command line, then the environment (LEASEHOLD_TOKENS_FILE, and
LEASEHOLD_TOKENS="ROLE:TOKEN,..." for inline tokens). See docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveServerConfig(cmd.Flags(), os.Getenv)
			if err != nil {
				return usageError{err}
			}
			applyGCDefault(os.Getenv)
			return runServer(cmd.Context(), cfg)
		},
	}
	addServerFlags(cmd.Flags())
	rootCmd.AddCommand(cmd)
}

// usageError is a configuration error: exit code 2.
type usageError struct{ error }

func (e usageError) ExitCode() int {
	fmt.Fprintln(os.Stderr, "leasehold server:", e.error)
	return 2
}

// buildService turns the resolved configuration into a service.Config.
func buildService(c serverConfig, logger *slog.Logger) (server.Config, error) {
	peers, err := parseBootstrap(c.Bootstrap)
	if err != nil {
		return server.Config{}, err
	}
	cfg := server.Config{
		Raft: replica.Config{
			ID: c.ID, DataDir: c.DataDir, RaftAddr: c.RaftAddr,
			ClientAddr: c.ClientAddr, HTTPAddr: c.HTTPAddr,
			Bootstrap: peers, TickInterval: time.Duration(c.Tick),
			Limits:            lease.Limits{MinDuration: time.Duration(c.MinDuration), MaxDuration: time.Duration(c.MaxDuration)},
			SnapshotThreshold: c.SnapshotThreshold, SnapshotInterval: time.Duration(c.SnapshotInterval),
			TrailingLogs: c.TrailingLogs,
		},
		Logger: logger,
	}
	cfg.Server.MaxWatchers, cfg.Server.MaxWatchersPerCaller = int(min(c.MaxWatchers, 1<<31)), int(min(c.MaxWatchersPerCaller, 1<<31))
	cfg.Server.MaxCalls = int(min(c.MaxCalls, 1<<31))
	if c.TokensFile != "" {
		if cfg.Server.Tokens, err = readTokens(c.TokensFile); err != nil {
			return cfg, err
		}
	}
	for _, t := range c.Tokens {
		role, tok, _ := strings.Cut(t, ":")
		r, err := grpcserver.ParseRole(role)
		if err != nil {
			return cfg, err
		}
		if cfg.Server.Tokens == nil {
			cfg.Server.Tokens = map[string]grpcserver.Role{}
		}
		cfg.Server.Tokens[tok] = r
	}
	if c.TLSCert != "" {
		if cfg.Server.TLS, err = grpcserver.TLSConfig(c.TLSCert, c.TLSKey, c.TLSClientCA); err != nil {
			return cfg, err
		}
	}
	warning, err := exposure(c.ClientAddr, len(cfg.Server.Tokens), cfg.Server.TLS != nil, c.InsecureAllowOpen)
	if err != nil {
		return cfg, err
	}
	if warning != "" {
		logger.Warn(warning, "client_addr", c.ClientAddr)
	}
	if c.RaftTLSCert != "" {
		if cfg.Raft.TLS, err = replica.ServerTLSConfig(c.ID, c.RaftTLSCert, c.RaftTLSKey, c.RaftTLSCA); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func runServer(ctx context.Context, c serverConfig) error {
	logger, err := newLogger(c.LogLevel)
	if err != nil {
		return err
	}
	cfg, err := buildService(c, logger)
	if err != nil {
		return usageError{err}
	}
	var restore []byte
	if c.RestoreSnapshot != "" {
		fh, err := os.Open(c.RestoreSnapshot)
		if err != nil {
			return usageError{err}
		}
		restore, err = replica.ReadSnapshotFile(fh)
		fh.Close()
		if err != nil {
			return usageError{fmt.Errorf("restore_snapshot: %w", err)}
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	auth := "open (no authentication)"
	if len(cfg.Server.Tokens) > 0 {
		auth = fmt.Sprintf("%d bearer tokens", len(cfg.Server.Tokens))
	}
	logger.Info("serving", "id", c.ID, "client", srv.ClientAddr(), "raft", srv.Raft.RaftAddr(), "http", srv.HTTPAddr(),
		"auth", auth, "tls", cfg.Server.TLS != nil, "raft_tls", cfg.Raft.TLS != nil)
	if c.Join != "" {
		if err := joinCluster(ctx, srv, c, logger); err != nil {
			srv.Close()
			return err
		}
	}
	if restore != nil {
		if err := restoreOnce(ctx, srv, c.DataDir, restore, logger); err != nil {
			srv.Close()
			return err
		}
	}
	member := make(chan error, 1)
	go func() { member <- stayMember(ctx, srv, c, logger) }()
	select {
	case <-ctx.Done():
		<-member
	case err := <-member:
		if err != nil {
			logger.Error("stopping", "err", err)
			srv.Close()
			return err
		}
		<-ctx.Done()
	}
	logger.Info("shutting down (leadership is handed over first when this server leads)")
	return srv.Close()
}

func parseBootstrap(s string) ([]replica.Peer, error) {
	if s == "" {
		return nil, nil
	}
	var peers []replica.Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--bootstrap: %q is not ID=RAFTADDR", part)
		}
		peers = append(peers, replica.Peer{ID: id, RaftAddr: addr})
	}
	return peers, nil
}

// readTokens reads "ROLE TOKEN" lines; blank lines and # comments are skipped.
func readTokens(path string) (map[string]grpcserver.Role, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	tokens := map[string]grpcserver.Role{}
	sc := bufio.NewScanner(fh)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"ROLE TOKEN\"", path, line)
		}
		role, err := grpcserver.ParseRole(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		tokens[fields[1]] = role
	}
	return tokens, sc.Err()
}
