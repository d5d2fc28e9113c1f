// Package walstore is an append-only Raft log store that costs one fsync per
// batch: hashicorp/raft hands the leader's group commit (and each follower
// AppendEntries) to StoreLogs as one batch, which becomes one write and one
// fdatasync. bbolt, the store it replaces on new data directories, costs two
// fsyncs per transaction (pages, then meta) plus its page bookkeeping; on a
// one-client write both the leader's and a follower's store sit on the
// critical path one after the other, so this is where one-client latency
// goes (docs/performance.md).
//
// # Format
//
// A directory of segment files named by the index of their first entry
// (%020d.seg). A segment is a sequence of records:
//
//	uint32 length of payload (little endian, > 0)
//	uint32 CRC-32C of the length bytes and the payload
//	payload: the entry in boltstore's codec (it carries its own index)
//
// Indexes are consecutive within a segment and across segments. A segment is
// closed ("rolled") once it reaches SegmentBytes; only the last one is ever
// appended to. A file "head" (uint64 first index + CRC-32C, replaced by
// rename) records a head compaction that ends inside a segment.
//
// # Crash safety
//
//   - A batch is one write at the end of the last segment followed by
//     fdatasync; StoreLogs returns only after both. A crash mid-write leaves a
//     torn tail: on open, the last segment is scanned and cut (ftruncate +
//     fsync) at the first record whose length, CRC or index is wrong. Only
//     the last segment may be torn; a bad record in an earlier one is
//     corruption and Open fails rather than drop acknowledged entries.
//   - A new segment is created, then the directory is fsynced, before
//     anything is written to it; an empty last segment left by a crash is
//     removed on open.
//   - Tail truncation (Raft dropping conflicting entries: the operation that
//     broke raft-wal v0.4.0, hashicorp/raft-wal#31) removes whole later
//     segments from the last one backwards, then cuts the segment holding the
//     first removed index and fsyncs it. There is no per-segment state to get
//     wrong: a segment is whatever valid records it holds. Any crash point
//     leaves a prefix of the old log at least as long as the kept part.
//   - Head compaction writes "head" first (temp file, fsync, rename, fsync
//     directory), then removes fully compacted segments oldest first, so a
//     crash leaves a suffix of the log. Deleting the whole log (Raft does
//     after installing a snapshot, since the store is monotonic) writes a head
//     past the last index first, so a crash part-way reopens as an empty log,
//     then removes every segment and the head file.
//
// The store implements raft.MonotonicLogStore: it never holds a gap, so Raft
// deletes the whole log after a snapshot install instead of leaving one. A
// wrapper that hides IsMonotonic (fault injection does) makes Raft compact
// instead and then append past a gap; the store takes that as the snapshot
// install it is and replaces the whole log, rather than fail every append
// and leave the follower unable to catch up.
package walstore
