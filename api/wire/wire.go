// Package wire converts between Leasehold's domain types (package lease) and
// the leasehold.v1 protobuf messages, and between *lease.Error and gRPC
// statuses. The server and the Go client both use it, so the two sides of the
// wire cannot disagree about a field.
package wire

import (
	"time"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/lease"
)

// Key converts a protobuf key (nil gives the zero key, which fails validation).
func Key(k *pb.Key) lease.Key {
	if k == nil {
		return lease.Key{}
	}
	return lease.Key{Namespace: k.Namespace, Group: k.Group, Name: k.Name}
}

// KeyPB converts a key to protobuf.
func KeyPB(k lease.Key) *pb.Key {
	return &pb.Key{Namespace: k.Namespace, Group: k.Group, Name: k.Name}
}

// Ms converts a duration to whole milliseconds (truncating).
func Ms(d time.Duration) int64 { return d.Milliseconds() }

// FromMs converts milliseconds to a duration.
func FromMs(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// ceilMs converts a remaining time to milliseconds rounding up, so a lease
// with 0.4 ms left is not reported as gone; negative values become 0.
func ceilMs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

var opToPB = map[lease.Op]pb.OpKind{
	lease.OpClaim:  pb.OpKind_OP_KIND_CLAIM,
	lease.OpExtend: pb.OpKind_OP_KIND_EXTEND,
	lease.OpRevoke: pb.OpKind_OP_KIND_REVOKE,
	lease.OpPin:    pb.OpKind_OP_KIND_PIN,
	lease.OpUnpin:  pb.OpKind_OP_KIND_UNPIN,

	lease.OpQueueClaim:  pb.OpKind_OP_KIND_QUEUE_CLAIM,
	lease.OpCancelQueue: pb.OpKind_OP_KIND_CANCEL_QUEUE,
}

// Op converts an op kind; unknown kinds give lease.OpInvalid.
func Op(k pb.OpKind) lease.Op {
	for op, pk := range opToPB {
		if pk == k {
			return op
		}
	}
	return lease.OpInvalid
}

// OpPB converts an op.
func OpPB(op lease.Op) pb.OpKind { return opToPB[op] }

// Command converts a bulk op (its deadline is left zero: the backend sets it).
func Command(o *pb.Op) lease.Command {
	return lease.Command{Op: Op(o.GetKind()), Key: Key(o.GetKey()), Holder: o.GetHolder(), Duration: FromMs(o.GetDurationMs()), Wait: FromMs(o.GetWaitMs())}
}

// CommandPB converts a command to a bulk op.
func CommandPB(c *lease.Command) *pb.Op {
	out := new(pb.Op)
	fillCommandPB(out, new(pb.Key), c)
	return out
}

// CommandsPB converts cmds for one request, with two allocations for all
// of them rather than two per op (a Bulk call carries up to thousands).
func CommandsPB(cmds []lease.Command) []*pb.Op {
	ops, keys := make([]pb.Op, len(cmds)), make([]pb.Key, len(cmds))
	out := make([]*pb.Op, len(cmds))
	for i := range cmds {
		fillCommandPB(&ops[i], &keys[i], &cmds[i])
		out[i] = &ops[i]
	}
	return out
}

// fillCommandPB writes the conversion of c into out, with key as its key
// message; both must be zero.
func fillCommandPB(out *pb.Op, key *pb.Key, c *lease.Command) {
	key.Namespace, key.Group, key.Name = c.Key.Namespace, c.Key.Group, c.Key.Name
	out.Kind, out.Key, out.Holder, out.DurationMs, out.WaitMs = OpPB(c.Op), key, c.Holder, Ms(c.Duration), Ms(c.Wait)
}

// OutcomePB converts an outcome; the enum values match lease.Outcome's.
func OutcomePB(o lease.Outcome) pb.Outcome { return pb.Outcome(o) }

// Outcome converts an outcome.
func Outcome(o pb.Outcome) lease.Outcome { return lease.Outcome(o) }

// ResultPB converts a successful result for key k.
func ResultPB(k lease.Key, r *lease.Result) *pb.OpResult {
	out := new(pb.OpResult)
	FillResultPB(out, new(pb.Key), k, r)
	return out
}

// ResultSlab hands out the messages of many results from three
// allocations, for a response that carries many (Bulk, a renewal stream's
// message): GC cost follows the number of objects. Each message is handed
// out once; the slab lives as long as any of them.
type ResultSlab struct {
	results []pb.OpResult
	keys    []pb.Key
}

// NewResultSlab makes room for n results.
func NewResultSlab(n int) *ResultSlab {
	return &ResultSlab{results: make([]pb.OpResult, 0, n), keys: make([]pb.Key, 0, n)}
}

// ResultPB is wire.ResultPB from the slab (from the heap once it is used up).
func (s *ResultSlab) ResultPB(k lease.Key, r *lease.Result) *pb.OpResult {
	if len(s.results) == cap(s.results) {
		return ResultPB(k, r)
	}
	s.results, s.keys = s.results[:len(s.results)+1], s.keys[:len(s.keys)+1]
	out := &s.results[len(s.results)-1]
	FillResultPB(out, &s.keys[len(s.keys)-1], k, r)
	return out
}

// FillResultPB writes the conversion of result r for key k into out, with
// key as its key message; both must be zero.
func FillResultPB(out *pb.OpResult, key *pb.Key, k lease.Key, r *lease.Result) {
	key.Namespace, key.Group, key.Name = k.Namespace, k.Group, k.Name
	out.Outcome, out.Key, out.NowNs = OutcomePB(r.Outcome), key, int64(r.Now)
	if r.Holder != "" {
		out.Holder = r.Holder
		out.Token = r.Token
		out.StartNs = int64(r.Start)
		out.ExpiryNs = int64(r.Expiry)
		if r.Outcome == lease.OutcomeGranted || r.Outcome == lease.OutcomeExtended {
			out.ExpiresInMs = ceilMs(r.Expiry - r.Now)
		}
	}
	if r.Outcome == lease.OutcomeQueued {
		out.Position = int32(r.Position)
		out.WaitExpiryNs = int64(r.WaitExpiry)
	}
}

// InfoPB converts a lease as read at replicated time now.
func InfoPB(i *lease.Info, now time.Duration) *pb.LeaseInfo {
	return &pb.LeaseInfo{Key: KeyPB(i.Key), Holder: i.Holder, Token: i.Token, StartNs: int64(i.Start),
		ExpiryNs: int64(i.Expiry), ExpiresInMs: ceilMs(i.Expiry - now), Pinned: i.Pinned}
}

// Info converts a lease read.
func Info(i *pb.LeaseInfo) lease.Info {
	return lease.Info{Key: Key(i.GetKey()), Holder: i.GetHolder(), Token: i.GetToken(),
		Start: time.Duration(i.GetStartNs()), Expiry: time.Duration(i.GetExpiryNs()), Pinned: i.GetPinned()}
}

// EventKindPB converts an event kind; the enum values match lease.EventKind's.
func EventKindPB(k lease.EventKind) pb.EventKind { return pb.EventKind(k) }

// EventPB converts an event.
func EventPB(e *lease.Event) *pb.Event {
	return &pb.Event{Kind: EventKindPB(e.Kind), Key: KeyPB(e.Key), Holder: e.Holder, Token: e.Token,
		ExpiryNs: int64(e.Expiry), Index: e.Index, NowNs: int64(e.Now)}
}

// Event converts an event.
func Event(e *pb.Event) lease.Event {
	return lease.Event{Kind: lease.EventKind(e.GetKind()), Key: Key(e.GetKey()), Holder: e.GetHolder(), Token: e.GetToken(),
		Expiry: time.Duration(e.GetExpiryNs()), Index: e.GetIndex(), Now: time.Duration(e.GetNowNs())}
}
