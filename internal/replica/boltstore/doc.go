// Package boltstore is the durable Raft log and stable store of a Leasehold
// server: one bbolt file holding hashicorp/raft's log entries and its stable
// keys (current term, last vote).
//
// It exists because raft-wal v0.4.0, the store used before, corrupts its log
// on a tail truncation: DeleteRange on the last entries (a deposed leader or
// a follower dropping conflicting uncommitted entries) marks the tail segment
// sealed without writing its index block, and the next start panics in
// raft.NewRaft with "sealed segment has no index block"
// (hashicorp/raft-wal#31). The upstream fix (#33) is in no release the module
// proxy serves, so any server whose log tail was ever cut back could not
// restart. A B+tree keyed by index has no segment state to get wrong: a tail
// truncation is a plain range delete in one transaction.
//
// Durability contract: every mutating call (StoreLog, StoreLogs, DeleteRange,
// Set, SetUint64) returns only after its bbolt transaction has committed and
// been fsynced (NoSync is never set), and a call either takes effect whole or
// not at all. StoreLogs writes a whole batch in one transaction, so Raft's
// group commit of up to MaxAppendEntries entries costs one fsync. The
// freelist is not persisted (NoFreelistSync, rebuilt on open) and kept in a
// hash map, as raft-boltdb v2 does, so a large freelist does not slow every
// commit.
//
// Entries are stored in a small hand-rolled encoding with a version byte (see
// codec.go); every field of raft.Log round-trips. The first and last index
// are cached in memory and updated on every write, so Raft's frequent
// FirstIndex/LastIndex calls do not open a transaction.
package boltstore
