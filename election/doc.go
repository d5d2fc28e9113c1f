// Package election runs code while this process leads, and stops it the
// moment it might not: leader election on a Leasehold lease, in the shape of
// Kubernetes' leaderelection.RunOrDie and etcd's concurrency.Election.
//
// One lease key is the office; each candidate has a unique ID (its holder
// name). A candidate campaigns with a claim-on-release: the claim waits in
// the state machine's queue for the key and is granted, in arrival order,
// when the current leader's lease is released or expires, so a release
// wakes one candidate rather than a herd.
//
// While it leads, a candidate holds a context that is cancelled, with a
// cause wrapping ErrLeadershipLost, at the first of:
//
//   - StopMargin before the lease's SafeUntil, unless a renewal has moved
//     SafeUntil later by then. SafeUntil is the start of the last confirmed
//     claim or extend call plus the duration, on this process's monotonic
//     clock, and the cluster holds the lease at least that long; so the work
//     is told to stop before any other candidate can be granted the lease;
//   - the lease manager reporting the lease lost (a renewal answered "not
//     held", or could not be confirmed in time);
//   - the watch showing the key revoked, expired or held under another
//     fencing token (for example a revoke by the same holder name from
//     elsewhere).
//
// The fencing token of the term is at hand (Leadership.Token, and the
// argument of OnStartedLeading): pass it with every write the leader makes
// to a downstream store, and have the store refuse tokens lower than the
// highest it has seen. A lease alone cannot stop a paused leader's delayed
// write from landing; the token can.
//
// Observe and OnNewLeader follow the current leader through the watch: a
// linearizable read, then the key's events from the index after that read,
// reopened (with a fresh read) whenever the stream breaks.
//
// Run is the one-call form: campaign, call OnStartedLeading with the
// leading context, and when leadership ends (the context of Run is done,
// the callback returns, or leadership is lost) wait for the callback to
// return, resign, and call OnStoppedLeading. Campaign, Leadership.Resign,
// Leader and Observe are the parts, as in etcd.
package election
