// Package client is the Go client of Leasehold's gRPC API (leasehold.v1).
//
// A Client dials every configured server (lazily), routes writes and
// linearizable reads to the leader it last saw, follows the NotLeader hints
// servers send (by server ID, else by address, else by dialing the hinted
// address), and moves to another server when one cannot be reached or has no
// leader to name. When no server can be reached it returns a
// lease.CodeUnavailable error at once: it never hangs and never drops a call
// silently.
//
// Every error is a *lease.Error restored from the server's status details,
// so errors.Is(err, lease.ErrDenied) and the Holder/ExpiresIn/LeaderID/
// RetryAfter fields work as on the server. The client keeps the error
// taxonomy's promise that lease.CodeDeadlineExceeded, CodeUnavailable,
// CodeOverloaded and CodeNotLeader mean "not applied": a write whose answer
// was lost (its context expired, or the connection broke, after the request
// may have reached a server) is reported as CodeUnknown, never as one of
// those, and so is any later failure of a call one of whose attempts had an
// unknown outcome.
//
// Retries use full-jitter exponential backoff, a per-call attempt cap and a
// per-client retry budget (a token bucket that lets retries be at most about
// a tenth of calls, as in gRPC's retry throttling), and never come sooner
// than an overloaded server's retry-after. Denied, NotHeld, InvalidArgument,
// Unauthenticated and PermissionDenied are never retried. Redirects to a
// hinted leader and moves away from an unreachable server are routing, not
// retries: they cost no budget and no backoff.
//
// WaitUntilReleased and ClaimOnRelease are server streams: the server
// watches the applied log (no polling, no fixed delay) and, for
// ClaimOnRelease, queues the claim in the state machine, which grants it in
// arrival order on release. Result.RenewAfter is the server's suggested
// renew interval, longer when its admission queue is loaded. FullJitter and
// Budget (RetryBudget shares the client's own) let a layer above, such as
// the lease manager, retry by the same rules without doubling the budget.
package client
