// Package testutil holds helpers shared by the tests that run real Raft
// clusters (cluster, service, e2e, faults, herd, hostile).
package testutil

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/replica"
)

// LeakOptions are goleak's options for packages that run Raft clusters.
// hashicorp/raft's TCP transport accept loop and its connection readers may
// still be unwinding right after Shutdown returns; everything else a test
// leaves running is a leak.
func LeakOptions(extra ...goleak.Option) []goleak.Option {
	return append([]goleak.Option{
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*NetworkTransport).listen"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*netConn).Read"),
	}, extra...)
}

// FastRaft shortens Raft timeouts so elections and failover take a fraction
// of a second on loopback.
func FastRaft(c *replica.Config) {
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.TickInterval = 50 * time.Millisecond
}

// WaitFor polls cond every 5 ms until it holds, failing the test after
// timeout. It waits on a condition, never for a fixed time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
