// Package blackbox holds an outside check of Leasehold: a test that builds the
// leasehold binary, runs three `leasehold server` processes with different
// flags, drives them only through the CLI (claim, extend, revoke, wait
// --claim, list --stale, status, all with --json) while killing, pausing and
// restarting servers, and checks what the CLI's answers promise:
//
//   - no two holders' believed tenures of a key overlap;
//   - fencing tokens per key increase with real-time order, and one token
//     belongs to one holder;
//   - a holder is never told "not held" or "denied" while its belief covers
//     the whole call (no early loss);
//   - replicas that report the same applied index hold the same leases;
//   - every exit code is the contract's and matches its JSON error code.
//
// It imports nothing from the project: answers are parsed from the CLI's JSON
// into local structs. See docs/testing.md ("Black-box check").
package blackbox
