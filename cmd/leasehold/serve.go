package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/raftnode"
	"github.com/leasehold/leasehold/server"
	"github.com/leasehold/leasehold/service"
)

type serveFlags struct {
	id, dataDir                    string
	clientAddr, raftAddr, httpAddr string
	bootstrap                      string
	tokensFile                     string
	tlsCert, tlsKey, tlsClientCA   string
	tick                           time.Duration
	logLevel                       string
}

func init() {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one Leasehold server",
		Long: `Run one Leasehold server. Restarting it with the same --data-dir recovers its
state. To create a new cluster, start every server with the same --bootstrap
list; later restarts ignore it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServer(cmd.Context(), f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.id, "id", "", "server ID, unique in the cluster (required)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (required)")
	fs.StringVar(&f.clientAddr, "client-addr", "127.0.0.1:7101", "gRPC API address")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7201", "Raft address (must be reachable by the other servers)")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:7301", "HTTP address: health, metrics, status page")
	fs.StringVar(&f.bootstrap, "bootstrap", "", "bootstrap a new cluster: ID=RAFTADDR,ID=RAFTADDR,... (must include this server)")
	fs.StringVar(&f.tokensFile, "tokens-file", "", "file of bearer tokens, one \"ROLE TOKEN\" per line (role agent or admin); without it the API is open")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve the API over TLS with this certificate (PEM)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM)")
	fs.DurationVar(&f.tick, "tick", 250*time.Millisecond, "how often an idle leader advances replicated time")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	rootCmd.AddCommand(cmd)
}

func runServer(ctx context.Context, f serveFlags) error {
	if f.id == "" || f.dataDir == "" {
		return fmt.Errorf("--id and --data-dir are required")
	}
	logger, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	peers, err := parseBootstrap(f.bootstrap)
	if err != nil {
		return err
	}
	cfg := service.Config{
		Raft: raftnode.Config{
			ID: f.id, DataDir: f.dataDir, RaftAddr: f.raftAddr,
			ClientAddr: f.clientAddr, HTTPAddr: f.httpAddr,
			Bootstrap: peers, TickInterval: f.tick,
		},
		Logger: logger,
	}
	if f.tokensFile != "" {
		if cfg.Server.Tokens, err = readTokens(f.tokensFile); err != nil {
			return err
		}
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		if cfg.Server.TLS, err = server.TLSConfig(f.tlsCert, f.tlsKey, f.tlsClientCA); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := service.Start(cfg)
	if err != nil {
		return err
	}
	auth := "open (no authentication)"
	if len(cfg.Server.Tokens) > 0 {
		auth = fmt.Sprintf("%d bearer tokens", len(cfg.Server.Tokens))
	}
	logger.Info("serving", "id", f.id, "client", srv.ClientAddr(), "raft", srv.Raft.RaftAddr(), "http", srv.HTTPAddr(), "auth", auth, "tls", cfg.Server.TLS != nil)
	<-ctx.Done()
	logger.Info("shutting down")
	return srv.Close()
}

func parseBootstrap(s string) ([]raftnode.Peer, error) {
	if s == "" {
		return nil, nil
	}
	var peers []raftnode.Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--bootstrap: %q is not ID=RAFTADDR", part)
		}
		peers = append(peers, raftnode.Peer{ID: id, RaftAddr: addr})
	}
	return peers, nil
}

// readTokens reads "ROLE TOKEN" lines; blank lines and # comments are skipped.
func readTokens(path string) (map[string]server.Role, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	tokens := map[string]server.Role{}
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
		role, err := server.ParseRole(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		tokens[fields[1]] = role
	}
	return tokens, sc.Err()
}
