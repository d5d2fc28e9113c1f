package faults

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errBlocked is what a blocked Raft RPC fails with, as a refused or reset
// connection would.
var errBlocked = errors.New("faults: link blocked")

// Net is the fault state of the Raft links between the servers of one
// cluster: which directed links are cut and how long each message is
// delayed. Every server's Transport consults it before sending, so cutting
// a->b in a's transport and b->a in b's transport partitions the pair in
// both directions.
type Net struct {
	mu      sync.Mutex
	addrs   map[raft.ServerAddress]string // Raft address -> server ID
	blocked map[[2]string]bool            // [from, to]
	delay   time.Duration
	// blackhole makes a blocked send hang (until the link heals or a
	// timeout passes) instead of failing at once: a silent network, not a
	// refused connection.
	blackhole bool
	healed    chan struct{}
}

// NewNet returns a network with every link up.
func NewNet() *Net {
	return &Net{addrs: map[raft.ServerAddress]string{}, blocked: map[[2]string]bool{}, healed: make(chan struct{})}
}

func (n *Net) register(id string, addr raft.ServerAddress) {
	n.mu.Lock()
	n.addrs[addr] = id
	n.mu.Unlock()
}

// Cut blocks both directions between a and every server in others.
func (n *Net) Cut(a string, others ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range others {
		n.blocked[[2]string{a, b}] = true
		n.blocked[[2]string{b, a}] = true
	}
}

// CutOneWay blocks messages from a to each of others only.
func (n *Net) CutOneWay(a string, others ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range others {
		n.blocked[[2]string{a, b}] = true
	}
}

// Heal restores every link and removes delays.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.blocked)
	n.delay = 0
	close(n.healed)
	n.healed = make(chan struct{})
}

// SetDelay delays every Raft message by d.
func (n *Net) SetDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = d
	n.mu.Unlock()
}

// SetBlackhole chooses whether blocked sends hang (true) or fail at once.
func (n *Net) SetBlackhole(on bool) {
	n.mu.Lock()
	n.blackhole = on
	n.mu.Unlock()
}

// gate applies the faults to one message from -> target: it waits out the
// delay and fails if the link is cut.
func (n *Net) gate(from string, target raft.ServerAddress) error {
	n.mu.Lock()
	to := n.addrs[target]
	cut := n.blocked[[2]string{from, to}]
	delay, hole, healed := n.delay, n.blackhole, n.healed
	n.mu.Unlock()
	if cut {
		if hole {
			t := time.NewTimer(2 * time.Second)
			defer t.Stop()
			select {
			case <-healed:
			case <-t.C:
			}
		}
		return errBlocked
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	return nil
}

// Transport wraps a real Raft transport (TCP in the suite) and drops or
// delays outgoing messages as Net says. Incoming messages need no filter:
// they are outgoing messages of another server's Transport.
type Transport struct {
	inner raft.Transport
	net   *Net
	id    string
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

// NewTransport wraps inner for server id.
func NewTransport(inner raft.Transport, net *Net, id string) *Transport {
	net.register(id, inner.LocalAddr())
	return &Transport{inner: inner, net: net, id: id}
}

func (t *Transport) Consumer() <-chan raft.RPC             { return t.inner.Consumer() }
func (t *Transport) LocalAddr() raft.ServerAddress         { return t.inner.LocalAddr() }
func (t *Transport) SetHeartbeatHandler(cb func(raft.RPC)) { t.inner.SetHeartbeatHandler(cb) }
func (t *Transport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return t.inner.EncodePeer(id, addr)
}
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return t.inner.DecodePeer(b) }

func (t *Transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if err := t.net.gate(t.id, target); err != nil {
		return nil, err
	}
	p, err := t.inner.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &pipeline{AppendPipeline: p, t: t, target: target}, nil
}

func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if err := t.net.gate(t.id, target); err != nil {
		return err
	}
	return t.inner.AppendEntries(id, target, args, resp)
}

func (t *Transport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if err := t.net.gate(t.id, target); err != nil {
		return err
	}
	return t.inner.RequestVote(id, target, args, resp)
}

func (t *Transport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if err := t.net.gate(t.id, target); err != nil {
		return err
	}
	pv, ok := t.inner.(raft.WithPreVote)
	if !ok {
		return errors.New("faults: inner transport has no pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

func (t *Transport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if err := t.net.gate(t.id, target); err != nil {
		return err
	}
	return t.inner.InstallSnapshot(id, target, args, resp, data)
}

func (t *Transport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	if err := t.net.gate(t.id, target); err != nil {
		return err
	}
	return t.inner.TimeoutNow(id, target, args, resp)
}

// Close closes the inner transport and its pooled streams (Raft calls it
// on Shutdown), so peers' handlers for them return.
func (t *Transport) Close() error {
	if nt, ok := t.inner.(*raft.NetworkTransport); ok {
		nt.CloseStreams()
	}
	if c, ok := t.inner.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// pipeline gates each pipelined AppendEntries: a cut link fails the send,
// which makes Raft drop the pipeline and fall back to (gated) plain RPCs.
type pipeline struct {
	raft.AppendPipeline
	t      *Transport
	target raft.ServerAddress
}

func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if err := p.t.net.gate(p.t.id, p.target); err != nil {
		return nil, err
	}
	return p.AppendPipeline.AppendEntries(args, resp)
}
