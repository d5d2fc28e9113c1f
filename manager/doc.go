// Package manager is the lease manager an agent or controller embeds: the
// unit-facing API over a Leasehold cluster.
//
// A Manager hands out per (namespace, group) Handles with Claim, Revoke,
// Check (fencing), WaitUntilReleased, ClaimOnRelease, Pin, Unpin and Leases.
// A successful Claim returns a *Lease whose SafeUntil is the call's start
// on the local monotonic clock plus the time the server's answer left on the
// lease (what it applied, not what was asked): the guarantee a holder may
// rely on (the cluster counts the lease from a later instant). A renewal
// loop per held lease extends it at the server's suggested interval (a
// fraction of the duration when the server gives none) minus a random
// jitter, and reports a loss on the lease's Lost channel and the OnLost
// callback.
//
// All holders' ops go through one batcher onto Bulk RPCs, with no timer:
// while a bulk call is in flight the next batch fills, and at most
// MaxInFlight calls are outstanding; a bounded queue answers Overloaded
// locally when full. Every error is classified: final answers (denied, not
// held, invalid, auth) are returned at once; transient ones (not leader,
// unavailable, overloaded, deadline exceeded, unknown) are retried with
// full-jitter backoff (never sooner than a server's retry-after), an attempt
// cap and a retry budget shared with the client's own, so the two layers
// together retry at most about a tenth of their calls. A renewal that keeps
// failing retries within the same budget and retry-after: only its scheduled
// renewal counts as a new call. No error stops the
// manager: the worst an op gets is its final error.
//
// Waiting uses one watch stream per manager: WaitUntilReleased returns when
// the watch shows the lease revoked or expired (no polling, no +1 s floor),
// and ClaimOnRelease queues the claim in the state machine, which grants it
// in arrival order when the lease is released; the manager learns of the
// grant from the watch (or from its periodic keep-alive refresh, which
// answers "extended" once it holds the lease).
//
// A denied claim is remembered until the denial's expiry or until the
// watch shows the lease released, and a repeated claim meanwhile is denied
// locally without an RPC: a herd of minions retrying costs no Raft writes.
//
// Time comes from an injected Clock and randomness from an injected source,
// so tests drive retries and renewals deterministically.
package manager
