package grpcserver

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/api/wire"
	"github.com/leasehold/leasehold/lease"
)

// Renew serves a renewal stream: extends arrive with ids, each message's
// renewals go to the backend as one Write (so they join the admission
// queue's renewal lane together, as a Bulk call's do, and are replicated
// exactly as unary extends are), many Writes outstanding at once, and the
// answers ready at the same moment leave in one message.
//
// Ending the stream: when the client closes its side, or the backend says
// this server is not the leader. A NotLeader end waits until every Write it
// started has answered and those answers are sent, then ends the stream
// with the NotLeader status and hint: so a renewal the client has no answer
// for at a NotLeader end was never started, and the client may send it to
// the leader. Any other end (the client leaving, a transport break) leaves
// unanswered renewals unknown.
func (s *Server) Renew(stream pb.Leasehold_RenewServer) error {
	release, err := s.watches.acquire(stream.Context())
	if err != nil {
		return statusErr(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	rs := &renewStream{s: s, ctx: ctx, stop: make(chan struct{}), wake: make(chan struct{}, 1),
		slots: make(chan struct{}, s.opts.MaxBulkOps)}

	sent := make(chan error, 1)
	go func() { sent <- rs.sendLoop(stream) }()
	recvDone := make(chan error, 1)
	go func() { recvDone <- rs.recvLoop(stream) }()

	var end error
	select {
	case end = <-recvDone: // the client closed its side (nil) or the stream broke
	case <-rs.stop: // not the leader: no write starts after this
	case err := <-sent: // the stream broke while sending
		return err
	}
	rs.mu.Lock()
	if rs.notLeader != nil {
		// Whichever woke first: a recvLoop stopped by it ends with nil.
		end = rs.notLeader
	}
	rs.mu.Unlock()
	// Every started Write answers: within its deadline, or at once when
	// leadership is lost or the stream's context ends.
	rs.writes.Wait()
	rs.mu.Lock()
	rs.flushing = true
	rs.mu.Unlock()
	rs.signal()
	if err := <-sent; err != nil {
		return err
	}
	if end == nil || errors.Is(end, io.EOF) {
		return nil
	}
	return statusErr(end)
}

// renewStream is one Renew call's state.
type renewStream struct {
	s      *Server
	ctx    context.Context
	writes sync.WaitGroup
	// slots bounds the renewals of one stream received and not yet
	// answered on the wire (MaxBulkOps): a client sending faster than they
	// apply, or not reading its answers, is held back by gRPC flow control
	// instead of growing the server's memory.
	slots chan struct{}
	stop  chan struct{} // closed on the first NotLeader
	wake  chan struct{} // answers are pending (capacity 1)

	mu        sync.Mutex
	notLeader error // the first NotLeader seen; no Write starts after it
	pending   []*pb.RenewAnswer
	flushing  bool // no more answers will come: send what is pending and stop
}

// recvLoop reads renewals until the client closes its side, the stream
// breaks or a NotLeader stops it.
func (rs *renewStream) recvLoop(stream pb.Leasehold_RenewServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(req.Renewals) > rs.s.opts.MaxBulkOps {
			return lease.InvalidArgument("renewals", "%d renewals in one message; the limit is %d", len(req.Renewals), rs.s.opts.MaxBulkOps)
		}
		if !rs.start(req.Renewals) {
			return nil
		}
	}
}

// start validates one message's renewals, answers the invalid ones and
// sends the rest to the backend, one Write per distinct timeout (a client
// packs renewals of the same timeout together, so that is one Write).
// It returns false once a NotLeader has stopped the stream.
func (rs *renewStream) start(rens []*pb.Renewal) bool {
	for range rens {
		select {
		case rs.slots <- struct{}{}:
		case <-rs.stop:
			return false
		case <-rs.ctx.Done():
			return false
		}
	}
	limits := rs.s.limits()
	received := time.Now()
	type group struct {
		timeout time.Duration
		ids     []uint64
		cmds    []lease.Command
	}
	var groups []*group
	for _, r := range rens {
		c := lease.Command{Op: lease.OpExtend, Key: wire.Key(r.Key), Holder: r.Holder, Duration: wire.FromMs(r.DurationMs)}
		var err error
		if r.TimeoutMs < 0 {
			err = lease.InvalidArgument("timeout_ms", "timeout_ms is negative")
		} else {
			err = c.Validate(limits)
		}
		if err != nil {
			rs.answer(&pb.RenewAnswer{Id: r.Id, Error: wire.ErrorPB(err)})
			continue
		}
		t := wire.FromMs(r.TimeoutMs)
		var g *group
		for _, x := range groups {
			if x.timeout == t {
				g = x
			}
		}
		if g == nil {
			g = &group{timeout: t}
			groups = append(groups, g)
		}
		g.ids = append(g.ids, r.Id)
		g.cmds = append(g.cmds, c)
	}
	for _, g := range groups {
		rs.mu.Lock()
		stopped := rs.notLeader != nil
		if !stopped {
			rs.writes.Add(1)
		}
		rs.mu.Unlock()
		if stopped {
			return false
		}
		go rs.write(received, g.timeout, g.ids, g.cmds)
	}
	return true
}

// write runs one Write and answers each of its renewals.
func (rs *renewStream) write(received time.Time, timeout time.Duration, ids []uint64, cmds []lease.Command) {
	defer rs.writes.Done()
	ctx := rs.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, received.Add(timeout))
		defer cancel()
	}
	res, err := rs.s.b.Write(ctx, cmds)
	if err == nil && len(res) != len(cmds) {
		err = lease.Errorf(lease.CodeUnknown, "backend returned %d results for %d commands", len(res), len(cmds))
	}
	// The answers' messages come from slabs (a few allocations a Write).
	answers := make([]pb.RenewAnswer, len(cmds))
	slab := wire.NewResultSlab(len(cmds))
	out := make([]*pb.RenewAnswer, len(cmds))
	for i, id := range ids {
		out[i] = &answers[i]
		answers[i].Id = id
		e := err
		if e == nil {
			e = res[i].Err()
		}
		if e != nil {
			if lease.CodeOf(e) == lease.CodeNotLeader {
				rs.stopNotLeader(e)
			}
			answers[i].Error = wire.ErrorPB(e)
			continue
		}
		answers[i].Result = rs.s.withRenewAfter(slab.ResultPB(cmds[i].Key, &res[i]), &res[i])
	}
	rs.answer(out...)
}

func (rs *renewStream) stopNotLeader(err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.notLeader == nil {
		rs.notLeader = err
		close(rs.stop)
	}
}

func (rs *renewStream) answer(a ...*pb.RenewAnswer) {
	rs.mu.Lock()
	rs.pending = append(rs.pending, a...)
	rs.mu.Unlock()
	rs.signal()
}

func (rs *renewStream) signal() {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// sendLoop sends the pending answers, all of them in one message, until
// flushing is set and nothing is left.
func (rs *renewStream) sendLoop(stream pb.Leasehold_RenewServer) error {
	for {
		select {
		case <-rs.wake:
		case <-rs.ctx.Done():
			return rs.ctx.Err()
		}
		for {
			rs.mu.Lock()
			batch, done := rs.pending, rs.flushing
			rs.pending = nil
			rs.mu.Unlock()
			if len(batch) == 0 {
				if done {
					return nil
				}
				break
			}
			if err := stream.Send(&pb.RenewResponse{Answers: batch}); err != nil {
				return err
			}
			for range batch {
				<-rs.slots
			}
		}
	}
}
