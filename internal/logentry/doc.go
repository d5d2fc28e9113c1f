// Package logentry encodes the Raft log entries Leasehold writes: a batch of
// lease commands stamped with the leader's clock reading, or a settings change.
//
// The format is a small hand-rolled binary codec, versioned by its first
// byte. It is on the hot path of every write (the leader encodes, every
// replica decodes), so it avoids reflection and allocates only the decoded
// strings; consecutive commands of the same namespace and group share one copy
// of those strings, which is the common case for a controller's bulk calls.
// Decode rejects unknown versions and kinds and never trusts a length.
package logentry
