// Package linearize records histories of Leasehold client calls and checks
// them against the contract and the invariants of DESIGN.md: at most one
// holder per key at any replicated time (1), fencing tokens that strictly
// increase per key (2), no lease expiring before start+duration (3), no op
// applied after its deadline and no DeadlineExceeded op taking effect (4),
// no acknowledged write lost and replicas that agree (5), no call without an
// answer (6), and linearizability against a model of leases with time (7).
//
// # Why expiry can be checked here
//
// etcd's robustness tests never check lease expiry: their leases live for two
// hours, because expiry there depends on each server's wall clock, which a
// client cannot see. Leasehold's time is a replicated logical clock: every
// log entry carries the leader's clock reading, the state machine expires
// leases only as that clock passes start+duration (strictly), and every
// result says the replicated time it was applied at (lease.Result.Now), as
// does every read. So a history names, for every answer, the exact logical
// instant the state machine was at, and "expired" is a deterministic function
// of the log. The model advances its clock to each write's Now (a write's Now
// never goes backwards along the log) and expires the lease before checking
// the answer, exactly as fsm does.
//
// # The model
//
// Model is a porcupine model partitioned by key (keys are independent). Its
// state per key is the holder, token, start and expiry, the pinning entities,
// the replicated time of the last write and the largest token granted. It is
// nondeterministic, for two reasons:
//
//   - An op whose answer was Unknown or Canceled, or that never returned, may
//     or may not have been applied. It is given a return time after the whole
//     history, so porcupine may linearize it anywhere after its call, and its
//     step yields both "no effect" and "applied at an unknown replicated time
//     T in [now, deadline]". Such a lease's start and expiry become intervals,
//     and its token is unknown (but greater than every earlier one) until a
//     later answer states them.
//   - A lease with an uncertain expiry may or may not have expired by a later
//     op's time; both branches are kept until an answer decides.
//
// Ops that definitely did not apply (DeadlineExceeded, Overloaded,
// InvalidArgument, NotLeader, Unavailable, auth errors) are left out of the
// linearizability check, and stale reads too. A linearizable Get is checked
// at the replicated time it was evaluated at and moves the key's clock like a
// write: the leader serves it only once every entry proposed before it has
// applied, at the applied state's time, so no write linearized after a read
// has an earlier Now (a read that called a lease absent while an extend
// stamped before its expiry was still in flight is a violation).
//
// The invariant checks (Check) work from the statements in the history and the
// replicas' final states: every answer that names a holder, token, start and
// expiry is a fact about one lease ("tenure"); two tenures of a key must not
// overlap in replicated time unless the earlier one was revoked first; an
// answer that the key was absent must not fall inside a tenure; every lease
// version must come from an op that was not refused with DeadlineExceeded; and
// the latest acknowledged write on each key must show in the final state
// unless a maybe-applied op could have superseded it. A maybe-applied revoke
// excuses a lease's early end only for answers returned after it was called.
//
// On a linearizability failure Check writes porcupine's HTML visualisation of
// each failing key to a temporary directory and names it in the Report.
package linearize
