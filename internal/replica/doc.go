// Package replica runs one Leasehold server's Raft replica: hashicorp/raft
// with an append-only log (package walstore, DataDir/log; data directories
// created before it keep their log in DataDir/raft.db, package boltstore), a
// bbolt stable store (DataDir/raft.db), file snapshots and a TCP transport, the adapter that feeds committed
// entries to the pure state machine (package fsm), and the leader's
// replicated clock.
//
// The clock. Only the leader advances replicated time. When a node becomes
// leader it first waits on a Raft barrier, so every entry of earlier terms is
// applied, then takes the state machine's time as its base and from then on
// reads base + (monotonic time elapsed since). A reading is valid only in the
// term the clock was readied for and while this node leads in it, so a node
// that loses and regains leadership never stamps with its old base. Time
// during an election gap is therefore never counted: failover can stretch a
// lease but never shorten it, and replicated time never runs ahead of real
// time. Every proposed entry is stamped with the clock reading taken under
// the proposal lock, so stamps increase in log order. When nothing else was
// proposed for a tick interval, the tick proposes an empty entry so leases
// expire on an idle cluster; an idle cluster writes at most one such entry
// per interval.
//
// Reads. A linearizable read waits until the last entry proposed before it
// has applied, confirms leadership with a quorum, and evaluates leases at the
// applied state's time. A stale read reports its lag against the commit
// index the leader last sent, and is refused by a replica that has not heard
// from a leader for longer than an election timeout.
//
// Proposals are stamped and appended here, but batching, deadlines and back
// pressure are the admission queue's job (package admission), which calls
// Propose.
package replica
