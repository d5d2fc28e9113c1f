// Package admission is the leader-side admission queue: it sits between the
// API handlers and Raft, packs the ops of all concurrent callers (and the
// many ops of one bulk call) into one Raft log entry, serves renewals before
// claims, and pushes back at once instead of queueing work that will have
// expired before it is applied.
//
// # Shape
//
// Core is pure and deterministic: two FIFO lanes, the drain-rate and commit
// latency estimates, Admit, NextBatch, Withdraw, Expire and Completed, each
// taking the time as an argument. Everything about overload and priority is
// decided there and tested step by step with no goroutines or sleeps.
//
// Queue is the runner around it. Submit admits a call's ops under one lock
// and waits; one dispatcher goroutine builds entries and calls
// Proposer.Propose while fewer than MaxInFlight entries are in flight, and one
// goroutine per in-flight entry (so at most MaxInFlight) waits on its Future
// and answers the callers. A single dispatcher means entries reach the log in
// the order they were built, so a call split across entries stays in order.
//
// # Why these choices
//
// Dispatch without timers. A lone caller is proposed as soon as the
// dispatcher wakes (one channel send); under load, ops arriving while entries
// commit pile up and leave together in the next entry when a slot frees. That
// is group commit: the batch size adapts to the commit latency by itself,
// with none of the fixed delay Juju's timer-based batching added to sparse
// load and none of its 5 ms polling loop.
//
// Admission by expected drain time, not queue length (and not CoDel's fixed
// sojourn target). Each op has a deadline, the earlier of its caller's and a
// per-op-type default (extend and revoke 10 s, claim 3 s: a holder whose
// extend times out loses its lease, which is what churned Juju's leaders; and
// unlike Juju's, ours is tested to take effect). An op is rejected with
// CodeOverloaded{RetryAfter} when the ops served before it, at the measured
// drain rate, plus the commit latency exceed what is left of its deadline:
// every queued op is one we expect to make it, so the queue bounds itself at
// about rate x deadline, and a caller gets a definite answer at once instead
// of a timeout later. RetryAfter is the excess (how long until the backlog
// ahead of it would have drained), clamped to [10 ms, 30 s]. A hard cap
// (MaxQueuedOps) bounds memory even if the estimate is wrong. Claims may
// fill only part of it (half, or less to keep room for a full entry of
// claims): the estimate admits a cap's worth of claims while commit latency
// is low, and a cap full of claims would refuse every renewal, which costs
// holders their leases. The cap refuses all of a call's ops in a lane
// together, so it never cuts a lane's part of a call.
//
// The drain rate comes from Little's law, not from measured throughput:
// when the log is the bottleneck, MaxInFlight full entries are always in
// flight, so rate = MaxInFlight x ops per full entry / commit latency (ops
// per full entry is MaxOpsPerEntry, or MaxBytesPerEntry over the mean op
// size when bytes bind first). Measured throughput only equals capacity
// while a backlog lasts; a first version sampled it then, and under bursty
// load the sampling windows that survived were the slow ones, so the
// estimate collapsed (50 ops/s against 47k real) and the queue rejected work
// it could do. Latency is measured on every entry, and entries are full
// exactly when a backlog makes admission matter, so the estimate is right
// when it counts. It is optimistic when full entries commit slower than the
// small ones measured at light load; that costs at worst some
// DeadlineExceeded at dequeue until the next latency samples.
//
// Deadlines are checked three times: at admission, when the entry is built
// (ops with less than DeadlineMargin left are dropped and answered
// CodeDeadlineExceeded: never proposed), and by the state machine, since the
// runner writes each op's deadline into the entry in replicated time
// (replicatedNow + local time left - DeadlineMargin). The queue also keeps
// one timer at the earliest deadline of its queued ops (not one per call),
// so a caller hears DeadlineExceeded on time even when Raft is stuck and no
// entry is being built.
//
// Priority with a floor. Lane 1 holds extends and revokes, lane 2 claims,
// pins and unpins (clock ticks are proposed by the node, not queued). An
// entry takes renewals first but, while claims wait, keeps ClaimShare (20%)
// of its ops and bytes for them, then lets either lane fill what the other
// left. A claim storm therefore never delays an extend by more than the
// current entry, claims keep at least 20% of throughput, and the admission
// estimate uses the same rule (a renewal waits only for the renewals ahead
// and their claim share; a claim for the claims ahead and the renewals
// interleaved with them), so a claim storm is rejected while extends are
// still admitted. Priority decides which ops enter an entry; inside an entry
// ops are sorted by arrival, so a call's ops keep their order and
// conflicting ops (a revoke and a claim of one key) apply first come, first
// served.
//
// Admission is per op. A bulk call from a lease manager mixes holders'
// extends with new claims; rejecting the whole call because its claims cannot
// make it would throw away the extends, the exact failure this queue exists
// to prevent. Ops refused alone get their code, retry-after and leader hint
// in their result slot; when
// every op of a call fails the same way the call gets one *lease.Error (with
// the shortest RetryAfter), which is the usual single-op case. A call that
// fits in one entry is not split: if it does not fit in what is left of the
// entry being built it starts the next one. A bigger call is split in order.
// A mixed call's renewals and claims may land in different entries (renewals
// first), which reorders only ops on different keys: a call's ops on a key it
// touches in both lanes all wait in the renewal lane, in the call's order (so
// a manager's batch holding one holder's extend of a key and another's claim
// of it does not cost the extend its priority).
//
// Cancellation. A caller that leaves before its ops are proposed has them
// withdrawn (lazily removed from the lane, so cancel is O(1); lanes compact
// when withdrawn ops outnumber live ones) and gets CodeCanceled, or
// CodeDeadlineExceeded for a context deadline, meaning not applied. After
// proposal it still returns at once with CodeCanceled wrapping
// ErrMayHaveApplied; the entry's waiter later finds the call answered and
// drops the results. Every state change is made under the queue lock and
// every call is answered exactly once (request.answer closes its channel).
// An op counts as proposed from the moment it is taken into an entry, so a
// "not applied" answer is never given for an op that could reach the log.
//
// Proposer errors (CodeNotLeader with its hint, CodeUnavailable) and
// entry-level Future errors (CodeNotLeader, CodeUnknown after leadership
// loss) reach every op of the entry. When Proposer.Now reports that the node
// is not a ready leader, the entry fails with CodeNotLeader without a hint;
// the node should add its hint.
//
// Settings change live (Queue.SetSettings); metrics are plain callbacks
// (Hooks) so this package imports no metrics library.
package admission
