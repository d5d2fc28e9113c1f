package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/internal/devcluster"
)

func init() {
	var basePort int
	var dataDir, logLevel string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local 3-node cluster in one process (open API on loopback)",
		Long: `Run a local 3-node Leasehold cluster in one process, for development.

Node i (1..3) serves clients (gRPC) on 127.0.0.1:base+i, Raft on base+100+i
and HTTP (health, metrics, status page) on base+200+i. Without --data-dir the
cluster lives in a fresh temporary directory that is removed on exit; with
it, restarting recovers the cluster's state. The API is open (no
authentication) and bound to loopback only. Ctrl-C stops it cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), basePort, dataDir, logLevel)
		},
	}
	cmd.Flags().IntVar(&basePort, "base-port", 7100, "base port: clients on base+i, Raft on base+100+i, HTTP on base+200+i")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (default: a temporary directory removed on exit)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	rootCmd.AddCommand(cmd)
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runDev(ctx context.Context, basePort int, dataDir, logLevel string) error {
	logger, err := newLogger(logLevel)
	if err != nil {
		return err
	}
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "leasehold-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := devcluster.Start(ctx, devcluster.Options{Dir: dataDir, BasePort: basePort, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "stopping the dev cluster...")
		c.Close()
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	leader, err := c.WaitLeader(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("no leader elected: %w", err)
	}
	fmt.Printf("Leasehold dev cluster: 3 nodes, data in %s\n\n", dataDir)
	fmt.Printf("  %-6s %-17s %-17s %-17s\n", "node", "client (gRPC)", "raft", "http")
	for _, m := range c.Members {
		mark := ""
		if m == leader {
			mark = "  (leader)"
		}
		fmt.Printf("  %-6s %-17s %-17s %-17s%s\n", m.ID, m.ClientAddr, m.RaftAddr, m.HTTPAddr, mark)
	}
	fmt.Printf("\nThe API is OPEN (no authentication) and bound to loopback only.\n")
	fmt.Printf("Status page: http://%s/  Metrics: http://%s/metrics\n", leader.HTTPAddr, leader.HTTPAddr)
	fmt.Printf("Try:  leasehold claim application-leadership/model-1/app unit/0 --duration 30s --endpoints %s,%s,%s\n",
		c.Members[0].ClientAddr, c.Members[1].ClientAddr, c.Members[2].ClientAddr)
	fmt.Printf("Press Ctrl-C to stop.\n")
	<-ctx.Done()
	return nil
}
