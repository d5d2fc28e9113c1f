package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Waiters and watchers run beside the linearizability workload on keys of
// their own (group "w"): a claim-on-release grant is applied at a release
// some other op caused, which the linearizability model has no operation
// for, so these keys are checked by the believed-tenure, watch and replica
// checks instead (the main keys feed the tenure check too).

// WaitKey is the i-th key of the waiters.
func WaitKey(i int) lease.Key {
	return lease.Key{Namespace: Key(0).Namespace, Group: "w", Name: fmt.Sprint("k", i)}
}

// Clients are how the workload reaches the cluster.
type Clients struct {
	// New builds client i of the main workload (and of the watchers).
	New func(i int) (*client.Client, error)
	// Waiter builds waiter i's client, whose connections Break closes.
	Waiter func(i int) (*client.Client, error)
	// Break closes every open waiter connection (new ones are allowed):
	// a broken claim-on-release stream is retried by the client with the
	// same holder, the case server/wait.go must not confuse.
	Break func()
	// Servers read each server's own state (stale reads) for the replica
	// comparison.
	Servers []replicaReader
}

// runWaiters runs the waiters and watchers until ctx is done.
func (w *Workload) runWaiters(ctx context.Context, h *History, cl Clients) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for i := 0; i < w.Waiters; i++ {
		c, err := cl.Waiter(i)
		if err != nil {
			return err
		}
		start(func() { defer c.Close(); w.waiter(ctx, h, i, c, cl.Break) })
	}
	for i := 0; i < w.Watchers; i++ {
		c, err := cl.New(w.Clients + i)
		if err != nil {
			return err
		}
		start(func() { defer c.Close(); w.watcher(ctx, h, i, c) })
	}
	for i := 0; i < w.Releasers; i++ {
		c, err := cl.New(w.Clients + w.Watchers + i)
		if err != nil {
			return err
		}
		start(func() { defer c.Close(); w.releaser(ctx, h, i, c) })
	}
	if cl.Break != nil && w.Waiters > 0 {
		start(func() {
			for ctx.Err() == nil {
				hold(ctx, w.BreakEvery)
				if ctx.Err() == nil {
					cl.Break()
				}
			}
		})
	}
	if len(cl.Servers) > 0 {
		start(func() { h.samples.run(ctx, cl.Servers, 25*time.Millisecond) })
	}
	return nil
}

// waiter claims a waiter key, by a unary claim or by claim-on-release,
// holds it briefly and mostly revokes it, recording every grant it is told
// of and every revoke it calls. Half the time it renews a key it still
// holds through a claim-on-release stream and breaks the connections a
// few ms later, about when the server sends the grant: a failed send must
// not revoke the tenure the client's retried stream then reports (issue
// 12, hole 3). brk may be nil.
func (w *Workload) waiter(ctx context.Context, h *History, id int, c *client.Client, brk func()) {
	rnd := rand.New(rand.NewPCG(uint64(id)+1000, uint64(time.Now().UnixNano())))
	holder := fmt.Sprint("w", id)
	var held *lease.Key // a key this waiter holds and has not revoked
	for ctx.Err() == nil {
		if id == 0 && rnd.IntN(100) < 50 {
			w.tie(ctx, h, holder, c, rnd)
			continue
		}
		key := WaitKey(rnd.IntN(w.WaitKeys))
		renew := held != nil && rnd.IntN(2) == 0
		if renew {
			key = *held
		}
		d := w.waitLease(rnd)
		// Not derived from ctx, like the main workload's ops: the wait is
		// bounded by its own timeout.
		opCtx, cancel := context.WithTimeout(context.Background(), w.WaitTimeout)
		via := ViaStream
		call := h.now()
		var res client.Result
		var err error
		switch {
		case renew:
			if brk != nil {
				time.AfterFunc(time.Duration(rnd.Int64N(int64(10*time.Millisecond))), brk)
			}
			res, err = c.ClaimOnRelease(opCtx, key, holder, d, 0, nil)
		case rnd.IntN(100) < 30:
			via = ViaClaim
			res, err = c.Claim(opCtx, key, holder, d)
		default:
			res, err = c.ClaimOnRelease(opCtx, key, holder, d, 0, nil)
		}
		ret := h.now()
		cancel()
		h.waits.Add(1)
		if err != nil || (res.Outcome != lease.OutcomeGranted && res.Outcome != lease.OutcomeExtended) {
			hold(ctx, 20*time.Millisecond)
			continue
		}
		h.tenures.grant(GrantSeen{Op: -1 - int(h.waits.Load()), Key: key, Holder: holder, Token: res.Token, Via: via,
			Call: call, Return: ret, Remaining: res.Expiry - res.Now, Fresh: via == ViaClaim && res.Outcome == lease.OutcomeGranted, Start: res.Start})
		held = &key
		hold(ctx, time.Duration(rnd.Int64N(int64(min(d/2, 300*time.Millisecond)))))
		if rnd.IntN(100) < 60 {
			held = nil
			h.tenures.revoke(key, holder, h.now())
			rctx, rcancel := context.WithTimeout(context.Background(), w.Timeout)
			c.Revoke(rctx, key, holder)
			rcancel()
		}
	}
}

// tie claims two keys of its own (after the waiter keys) in one Bulk call with one
// duration, so when both are granted (one entry, one replicated time) they
// expire at the same instant; with claimants queued on both, one release
// by expiry then grants two keys at once, in the order the expiry heap
// pops them, which must be the same on every replica, restored from a
// snapshot or not (issue 12, hole 2). The leases are left to expire.
func (w *Workload) tie(ctx context.Context, h *History, holder string, c *client.Client, rnd *rand.Rand) {
	d := w.waitLease(rnd)
	// Listed in reverse key order: a heap rebuilt in key order would pop
	// them the other way round.
	cmds := []lease.Command{{Op: lease.OpClaim, Key: WaitKey(w.WaitKeys + 1), Holder: holder, Duration: d}, {Op: lease.OpClaim, Key: WaitKey(w.WaitKeys), Holder: holder, Duration: d}}
	opCtx, cancel := context.WithTimeout(context.Background(), w.Timeout)
	call := h.now()
	rs, err := c.Bulk(opCtx, cmds)
	ret := h.now()
	cancel()
	h.waits.Add(1)
	both := err == nil
	if err == nil {
		for i, r := range rs {
			res := r.Result
			if r.Err != nil || (res.Outcome != lease.OutcomeGranted && res.Outcome != lease.OutcomeExtended) {
				both = false
				continue
			}
			both = both && res.Outcome == lease.OutcomeGranted
			h.tenures.grant(GrantSeen{Op: -1 - int(h.waits.Load()), Key: cmds[i].Key, Holder: holder, Token: res.Token, Via: ViaClaim,
				Call: call, Return: ret, Remaining: res.Expiry - res.Now, Fresh: res.Outcome == lease.OutcomeGranted, Start: res.Start})
		}
	}
	if !both {
		hold(ctx, 50*time.Millisecond)
		return
	}
	h.ties.Add(1)
	// Queue a claimant on both keys, so the tied expiry grants two keys in
	// one apply. Their own grants (one replicated time, one duration) tie
	// again.
	var wg sync.WaitGroup
	for _, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opCtx, cancel := context.WithTimeout(context.Background(), d+2*time.Second)
			defer cancel()
			q := holder + "q"
			call := h.now()
			res, err := c.ClaimOnRelease(opCtx, cmd.Key, q, d, 0, nil)
			ret := h.now()
			h.waits.Add(1)
			if err == nil && (res.Outcome == lease.OutcomeGranted || res.Outcome == lease.OutcomeExtended) {
				h.tenures.grant(GrantSeen{Op: -1 - int(h.waits.Load()), Key: cmd.Key, Holder: q, Token: res.Token, Via: ViaStream,
					Call: call, Return: ret, Remaining: res.Expiry - res.Now})
			}
		}()
	}
	wg.Wait()
	hold(ctx, d)
}

// releaser waits for keys (main and waiter keys alike) to be released,
// and records each release reported.
func (w *Workload) releaser(ctx context.Context, h *History, id int, c *client.Client) {
	rnd := rand.New(rand.NewPCG(uint64(id)+2000, uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		key := Key(rnd.IntN(w.Keys))
		if rnd.IntN(2) == 0 {
			key = WaitKey(rnd.IntN(w.WaitKeys))
		}
		opCtx, cancel := context.WithTimeout(ctx, w.WaitTimeout)
		call := h.now()
		err := c.WaitUntilReleased(opCtx, key)
		ret := h.now()
		cancel()
		if err != nil {
			hold(ctx, 20*time.Millisecond)
			continue
		}
		h.tenures.released(ReleaseSeen{Key: key, Call: call, Return: ret})
	}
}

// watcher opens watches of the suite's namespace from just after a
// linearizable read, and records what each delivered until it ends.
func (w *Workload) watcher(ctx context.Context, h *History, id int, c *client.Client) {
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, w.Timeout)
		_, meta, err := c.Get(rctx, WaitKey(0))
		cancel()
		if err != nil {
			hold(ctx, 50*time.Millisecond)
			continue
		}
		seg := WatchSegment{Watcher: id, From: meta.AppliedIndex + 1}
		wt, err := c.Watch(ctx, client.WatchOptions{Namespace: Key(0).Namespace, StartIndex: seg.From})
		if err != nil {
			hold(ctx, 50*time.Millisecond)
			continue
		}
		for {
			b, err := wt.Next()
			if err != nil {
				if ctx.Err() == nil {
					seg.End = err.Error()
				}
				break
			}
			seg.Batches = append(seg.Batches, b)
		}
		wt.Close()
		h.watches.add(seg)
	}
}

// waitLease is a random waiter lease duration, in whole milliseconds (what
// the wire carries).
func (w *Workload) waitLease(rnd *rand.Rand) time.Duration {
	return (w.WaitMinLease + time.Duration(rnd.Int64N(int64(w.WaitMaxLease-w.WaitMinLease)+1))).Truncate(time.Millisecond)
}
