// Package herd holds the restart-herd test: tens of thousands of simulated
// agents, multiplexed through a handful of lease managers (one per
// simulated controller), hold and contend for thousands of leases on a real
// 3-node loopback cluster, then all restart at the same instant. The test
// asserts the safety invariants and the recovery bounds documented on
// TestHerd, and reports the load the leader saw, for the protected manager
// and for a naive client (TestHerdNaive, report only).
//
// Scale: the default run is the full scenario (20,001 agents, 6,667 leases,
// 3 claimants each) with time scaled down 10x (6 s leases renewed about
// every 3 s instead of 60 s / 30 s). -short runs 3,000 agents. The naive
// comparison runs with LEASEHOLD_HERD_NAIVE=1 (or LEASEHOLD_LONG=1).
package herd
