package server_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions(
		goleak.IgnoreAnyFunction("crypto/tls.(*Conn).Read"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)...)
}

var fastRaft = testutil.FastRaft

func startCluster(t *testing.T, opts devcluster.Options) *devcluster.Cluster {
	t.Helper()
	opts.Dir = t.TempDir()
	if opts.Raft == nil {
		opts.Raft = fastRaft
	}
	c, err := devcluster.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal("no leader:", err)
	}
	return c
}

func newClient(t *testing.T, cfg client.Config, addrs ...string) *client.Client {
	t.Helper()
	cfg.Endpoints = addrs
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

var waitFor = testutil.WaitFor

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}
