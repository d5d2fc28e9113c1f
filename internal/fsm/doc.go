// Package fsm is Leasehold's lease state machine: pure, deterministic, and
// free of I/O and wall clocks. Every replica applies the same Raft log entries
// to a Machine and reaches the same state and the same snapshot bytes.
//
// Time is the replicated logical clock carried by the entries themselves:
// applying an entry first advances the clock to the entry's time (never
// backwards) and expires, in one step, every unpinned lease whose
// start+duration is now strictly in the past. An expiry index (a min-heap on
// expiry) makes that cost O(expired log n), not O(leases). The commands in the
// entry then apply in order at that time, each with its own result; a bad
// command fails alone. A command whose deadline has passed is refused with
// CodeDeadlineExceeded and changes nothing.
//
// Leases due at the same instant expire in key order (the expiry index is
// ordered by expiry, then key), so every replica, live or restored from a
// snapshot, hands out the next tokens alike when releases grant queued
// claimants.
//
// Nothing else decides a result either: duration limits start at
// lease.DefaultLimits and change only through settings entries
// (settings_limits.go), never through a server's configuration.
//
// Fencing tokens come from a replicated grant counter: every grant takes the
// next value, so tokens increase strictly per key and across keys, even when
// one entry revokes and re-grants a key (which is why the token is not simply
// the entry's log index: one entry carries many commands).
//
// Machine is not safe for concurrent use; the Raft adapter serialises access.
package fsm
