// Package settings defines Leasehold's live cluster settings: lease duration
// bounds, the idle tick, the admission queue's knobs and the suggested renew
// fraction. A change is a logentry.KindSettings entry whose payload is
// Marshal's output, so every replica applies it at the same log position
// (fsm decodes the duration limits itself; raftnode and node apply the rest
// when the entry is applied). The codec is versioned so a newer server can
// add fields without breaking older payloads in snapshots.
package settings
