package replica

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// membershipTimeout bounds how long Raft may take to accept a
// configuration change (it waits for the previous one to commit).
const membershipTimeout = 10 * time.Second

// AddMember adds a server to the Raft configuration, as a voter or a
// non-voter, and registers its addresses in the member directory. Leader
// only. Adding a server already present with the same address and suffrage
// is a no-op, so a joining server may retry.
func (n *Node) AddMember(ctx context.Context, m logentry.Member, raftAddr string, voter bool) error {
	if _, ok := n.Now(); !ok {
		return n.NotLeaderError()
	}
	add := func() raft.Future {
		if voter {
			return n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(raftAddr), 0, membershipTimeout)
		}
		return n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(raftAddr), 0, membershipTimeout)
	}
	if err := n.waitFuture(ctx, add); err != nil {
		return err
	}
	n.log.Info("member added", "member", m.ID, "raft", raftAddr, "voter", voter)
	if m.ClientAddr == "" && m.HTTPAddr == "" {
		return nil
	}
	return n.proposeEntry(&logentry.Entry{Kind: logentry.KindMember, Payload: logentry.EncodeMember(m)}).wait(ctx)
}

// RegisterMember writes the addresses of a server that is in the Raft
// configuration at raftAddr into the member directory. Leader only. It never
// changes the configuration, so a server registering its addresses cannot
// re-add itself after an admin removed it: a server not in the leader's
// latest configuration is refused (InvalidArgument, field "id").
func (n *Node) RegisterMember(ctx context.Context, m logentry.Member, raftAddr string) error {
	if _, ok := n.Now(); !ok {
		return n.NotLeaderError()
	}
	known := false
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		known = known || (string(s.ID) == m.ID && string(s.Address) == raftAddr)
	}
	if !known {
		return lease.InvalidArgument("id", "no member %q at %s in the configuration (removed?); registering addresses never adds a server", m.ID, raftAddr)
	}
	return n.proposeEntry(&logentry.Entry{Kind: logentry.KindMember, Payload: logentry.EncodeMember(m)}).wait(ctx)
}

// RemoveMember removes a server from the Raft configuration. Leader only. A
// leader removing itself steps down once the change commits.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	if _, ok := n.Now(); !ok {
		return n.NotLeaderError()
	}
	known := false
	for _, s := range n.State().Servers {
		known = known || string(s.ID) == id
	}
	if !known {
		return lease.InvalidArgument("id", "no member %q in the configuration", id)
	}
	remove := func() raft.Future { return n.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout) }
	if err := n.waitFuture(ctx, remove); err != nil {
		return err
	}
	n.log.Info("member removed", "member", id)
	return nil
}

// waitFuture issues a Raft request and waits for it, mapping its error to
// the taxonomy.
func (n *Node) waitFuture(ctx context.Context, issue func() raft.Future) error {
	errc, ok := n.track(issue)
	if !ok {
		return errShuttingDown()
	}
	select {
	case err := <-errc:
		if err != nil {
			return n.mapApplyError(err)
		}
		return nil
	case <-ctx.Done():
		return &lease.Error{Code: lease.CodeUnknown, Message: "gave up waiting; the change may still apply", Cause: ctx.Err()}
	}
}

// Snapshot returns the state machine's snapshot bytes (fsm format) on the
// leader, after confirming leadership so every acknowledged write is in it.
func (n *Node) Snapshot(ctx context.Context) (data []byte, index uint64, err error) {
	index, _, err = n.ReadConsistent(ctx, func(m *fsm.Machine, _ time.Duration) {
		data = m.AppendSnapshot(nil)
		index = m.Index()
	})
	return data, index, err
}

// RestoreSnapshot replaces the cluster's state with a snapshot saved by
// Snapshot (disaster recovery into a new cluster). Leader only. Raft
// installs it as a new snapshot and sends it to the followers. The
// replicated clock then continues from the snapshot's time, so leases keep
// the time they had left when it was taken (the clock never jumps to this
// cluster's own time, which would expire them early).
func (n *Node) RestoreSnapshot(ctx context.Context, data []byte) error {
	if err := ctx.Err(); err != nil {
		return lease.ContextError(err, false)
	}
	probe := fsm.New()
	if err := probe.Restore(data); err != nil {
		return lease.InvalidArgument("snapshot", "%v", err)
	}
	// Pause the clock under the proposal lock, so no entry is stamped and
	// no read evaluated by the old clock once the state is swapped. It
	// restarts like a new term's clock, through establish and only in this
	// clock generation: if leadership changes meanwhile, the new term's own
	// establish readies it instead.
	n.proposeMu.Lock()
	if _, _, ok := n.clock.now(); !ok {
		n.proposeMu.Unlock()
		return n.NotLeaderError()
	}
	gen, _ := n.clock.pause()
	n.proposeMu.Unlock()

	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
	restoreErr := n.raft.Restore(meta, bytes.NewReader(data), time.Minute)
	if restoreErr == nil {
		n.log.Info("restored snapshot", "bytes", len(data))
	}
	// establish runs on the node's context, not the caller's: the clock
	// must not stay paused because this caller left. It returns once the
	// clock runs, leadership is lost, or the node closes.
	n.establish(n.ctx, gen)
	if restoreErr != nil {
		return fmt.Errorf("raftnode: restore: %w", restoreErr)
	}
	return nil
}

// ReadSnapshotFile reads and checks a snapshot file.
func ReadSnapshotFile(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if err := fsm.New().Restore(data); err != nil {
		return nil, err
	}
	return data, nil
}
