package replica

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// The state machine completes this node's own proposal as it applies the
// entry (Raft's leader hands it the Log it was given, tag and all), and
// runs the proposal's callback before ApplyBatch returns; an entry carrying
// an equal tag that is not the proposal's own (read from a log store, or
// another leader's) leaves it alone.
func TestApplyCompletesOwnProposal(t *testing.T) {
	sm := newStateMachine()
	p := &Proposal{done: make(chan struct{}), tag: []byte{proposalTag}}
	sm.addPending(p)
	notified := &flag{}
	if !p.Notify(notified) {
		t.Fatal("Notify refused on a pending proposal")
	}
	entry := func(holder string) []byte {
		c := claimCmd(holder, time.Minute)
		c.Key.Name = holder
		e := logentry.Entry{Kind: logentry.KindBatch, Time: time.Second, Commands: []lease.Command{c}}
		return e.Marshal()
	}

	sm.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: entry("other"), Extensions: []byte{proposalTag}}})
	select {
	case <-p.Done():
		t.Fatal("completed by an entry with an equal tag that is not its own")
	default:
	}

	sm.ApplyBatch([]*raft.Log{{Index: 2, Term: 1, Type: raft.LogCommand, Data: entry("mine"), Extensions: p.tag}})
	select {
	case <-p.Done():
	default:
		t.Fatal("own entry applied, proposal not completed")
	}
	if !notified.set {
		t.Fatal("callback did not run before ApplyBatch returned")
	}
	res, err := p.Result()
	if err != nil || len(res) != 1 || res[0].Code != lease.CodeOK || res[0].Holder != "mine" || !p.applied {
		t.Fatalf("result %+v, %v, applied %v", res, err, p.applied)
	}
	if len(sm.pending) != 0 {
		t.Fatalf("pending not emptied: %d", len(sm.pending))
	}
	// A later outcome (the future's waiter) does not overwrite it.
	p.complete(nil, lease.Errorf(lease.CodeUnknown, "late"), false)
	if _, err := p.Result(); err != nil {
		t.Fatalf("overwritten: %v", err)
	}
	if p.Notify(&flag{}) {
		t.Fatal("Notify accepted on a completed proposal")
	}
}

type flag struct{ set bool }

func (f *flag) Resolved() { f.set = true }
