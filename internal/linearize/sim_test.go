package linearize

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// A simulated cluster: clients invoke ops at random, an admission queue packs
// random subsets of them into entries stamped with the leader's replicated
// clock, entries apply in order on three fsm replicas, and answers return in
// random order. Faults: lost answers and lost entries (Unknown: maybe
// applied), admission rejects (Overloaded, DeadlineExceeded: not applied).

// bug is a planted fault: it may rewrite an entry before the replicas apply
// it (computed once, so replicas stay identical) and the answers and reads
// the clients see.
type bug interface {
	entry(leader *fsm.Machine, e *logentry.Entry) *logentry.Entry
	results(e *logentry.Entry, res []lease.Result) []lease.Result
	info(lease.Info) lease.Info
}

type simConfig struct {
	seed      int64
	clients   int
	keys      int
	ops       int
	maybeRate float64 // an answer is lost: Unknown, though applied
	dropRate  float64 // an entry is lost before commit: all its ops Unknown
	bug       bug
	// divergeAt, when non-zero, makes replica 2 skip ten entries from that index.
	divergeAt uint64
	// readAhead plants the read bug of issue 12 hole 5: reads are served at
	// the leader's clock while entries proposed before them are in flight.
	readAhead bool
}

type simOp struct {
	id     int
	client int
	cmd    lease.Command
	get    bool
	out    *Output
}

type sim struct {
	cfg      simConfig
	rnd      *rand.Rand
	rec      *Recorder
	clock    int64
	rep      time.Duration
	replicas [3]*fsm.Machine
	index    uint64
	busy     []bool
	queue    []*simOp // admitted writes, not yet proposed
	reads    []*simOp
	inflight []proposal
	ready    []*simOp
	invoked  int
}

type proposal struct {
	e   *logentry.Entry
	ops []*simOp
}

func runSim(cfg simConfig) ([]Operation, []Replica) {
	s := &sim{cfg: cfg, rnd: rand.New(rand.NewSource(cfg.seed)), busy: make([]bool, cfg.clients)}
	s.rec = NewRecorderClock(func() int64 { s.clock++; return s.clock })
	for i := range s.replicas {
		s.replicas[i] = fsm.New()
	}
	for s.invoked < cfg.ops || len(s.queue)+len(s.reads)+len(s.inflight)+len(s.ready) > 0 {
		switch r := s.rnd.Intn(100); {
		case r < 20:
			s.rep += time.Duration(s.rnd.Intn(150)) * time.Millisecond
		case r < 45 && s.invoked < cfg.ops:
			s.invoke()
		case r < 60:
			s.propose()
		case r < 72:
			s.apply()
		case r < 80:
			s.serveRead()
		default:
			s.answer()
		}
	}
	var reps []Replica
	for i, m := range s.replicas {
		reps = append(reps, Replica{ID: fmt.Sprint("r", i), Snapshot: m.AppendSnapshot(nil)})
	}
	return s.rec.History(), reps
}

func (s *sim) key(i int) lease.Key {
	return lease.Key{Namespace: "ns", Group: "g", Name: fmt.Sprint("k", i)}
}

func (s *sim) invoke() {
	c := s.rnd.Intn(s.cfg.clients)
	if s.busy[c] {
		return
	}
	s.busy[c] = true
	s.invoked++
	holder := fmt.Sprint("u", c%(s.cfg.clients/2+1)) // some holders share a name across clients
	cmd := lease.Command{Key: s.key(s.rnd.Intn(s.cfg.keys)), Holder: holder,
		Duration: time.Duration(1000+s.rnd.Intn(2000)) * time.Millisecond,
		Deadline: s.rep + time.Duration(50+s.rnd.Intn(500))*time.Millisecond}
	op := &simOp{client: c, cmd: cmd}
	switch r := s.rnd.Intn(100); {
	case r < 35:
		cmd.Op = lease.OpClaim
	case r < 52:
		cmd.Op = lease.OpExtend
	case r < 62:
		cmd.Op = lease.OpRevoke
	case r < 68:
		cmd.Op, cmd.Holder = lease.OpPin, fmt.Sprint("pin", s.rnd.Intn(2))
	case r < 75:
		cmd.Op, cmd.Holder = lease.OpUnpin, fmt.Sprint("pin", s.rnd.Intn(2))
	default:
		op.get = true
	}
	op.cmd = cmd
	in := Input{Kind: KindOf(cmd.Op), Key: cmd.Key, Holder: cmd.Holder, Duration: cmd.Duration, Deadline: cmd.Deadline}
	if op.get {
		in = Input{Kind: KindGet, Key: cmd.Key}
		op.id = s.rec.Invoke(c, in)
		s.reads = append(s.reads, op)
		return
	}
	op.id = s.rec.Invoke(c, in)
	s.queue = append(s.queue, op)
}

func (s *sim) propose() {
	if len(s.queue) == 0 {
		return
	}
	s.rnd.Shuffle(len(s.queue), func(i, j int) { s.queue[i], s.queue[j] = s.queue[j], s.queue[i] })
	n := 1 + s.rnd.Intn(len(s.queue))
	e := &logentry.Entry{Kind: logentry.KindBatch, Time: s.rep}
	var ops []*simOp
	for _, op := range s.queue[:n] {
		switch {
		case s.rnd.Intn(40) == 0:
			s.done(op, Output{Code: lease.CodeOverloaded})
		case op.cmd.Deadline < s.rep-100*time.Millisecond: // the queue's clock estimate lags
			s.done(op, Output{Code: lease.CodeDeadlineExceeded})
		default:
			e.Commands = append(e.Commands, op.cmd)
			ops = append(ops, op)
		}
	}
	s.queue = append(s.queue[:0], s.queue[n:]...)
	if len(ops) > 0 {
		s.inflight = append(s.inflight, proposal{e, ops})
	}
}

func (s *sim) apply() {
	if len(s.inflight) == 0 {
		return
	}
	p := s.inflight[0]
	s.inflight = s.inflight[1:]
	if s.rnd.Float64() < s.cfg.dropRate {
		for _, op := range p.ops {
			s.done(op, Output{Code: lease.CodeUnknown})
		}
		return
	}
	e := p.e
	if s.cfg.bug != nil {
		e = s.cfg.bug.entry(s.replicas[0], e)
	}
	s.index++
	var res []lease.Result
	for i, m := range s.replicas {
		if i == 2 && s.cfg.divergeAt != 0 && s.index >= s.cfg.divergeAt && s.index < s.cfg.divergeAt+10 {
			continue
		}
		r := m.Apply(s.index, e)
		if i == 0 {
			res = r
		}
	}
	if s.cfg.bug != nil {
		res = s.cfg.bug.results(e, res)
	}
	for i, op := range p.ops {
		out := FromResult(res[i])
		if s.rnd.Float64() < s.cfg.maybeRate {
			out = Output{Code: lease.CodeUnknown}
			if s.rnd.Intn(2) == 0 {
				out.Code = lease.CodeCanceled
			}
		}
		s.done(op, out)
	}
}

// serveRead answers a linearizable read on the leader as raftnode does: once
// every entry proposed before it has applied, at the applied state's time.
func (s *sim) serveRead() {
	if len(s.reads) == 0 || (len(s.inflight) > 0 && !s.cfg.readAhead) {
		return
	}
	i := s.rnd.Intn(len(s.reads))
	op := s.reads[i]
	s.reads = append(s.reads[:i], s.reads[i+1:]...)
	at := s.replicas[0].Now()
	if s.cfg.readAhead {
		at = max(s.rep, at) // the leader's clock, ahead of entries in flight
	}
	info, ok := s.replicas[0].Get(op.cmd.Key, at)
	if ok && s.cfg.bug != nil {
		info = s.cfg.bug.info(info)
	}
	s.done(op, FromInfo(info, ok, at))
}

func (s *sim) done(op *simOp, out Output) {
	op.out = &out
	s.ready = append(s.ready, op)
}

func (s *sim) answer() {
	if len(s.ready) == 0 {
		return
	}
	i := s.rnd.Intn(len(s.ready))
	op := s.ready[i]
	s.ready = append(s.ready[:i], s.ready[i+1:]...)
	s.rec.Return(op.id, *op.out)
	s.busy[op.client] = false
}
