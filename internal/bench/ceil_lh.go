package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// The ceilings mode drives Leasehold through its public Go client with its
// default configuration, as a user would: unary Claim/Extend/Revoke, Bulk
// for the batched ops, Watch to see expiries.

// ceilLeaseDuration is what held leases ask for: long enough that nothing
// expires during a run.
const ceilLeaseDuration = 60 * time.Second

func (t *leaseholdTarget) ceilSupports(op string) (bool, string) {
	return true, "" // extend-stream: client.Renewer over the Renew stream
}

func (t *leaseholdTarget) ceilMaxBatch() int { return 10_000 }

func (t *leaseholdTarget) ceilConn(ctx context.Context, o ceilConnOpts) (ceilConn, error) {
	c, err := client.New(client.Config{Endpoints: o.endpoints})
	if err != nil {
		return nil, fmt.Errorf("%s: client: %w", t.name, err)
	}
	return &lhCeilConn{c: c}, nil
}

type lhCeilConn struct{ c *client.Client }

func (c *lhCeilConn) Close() error { return c.c.Close() }

func lhKey(s string) lease.Key {
	k, err := lease.ParseKey(s)
	if err != nil {
		panic(err) // the keys below are well formed
	}
	return k
}

// lhWorker is one worker; its keys are "<run>/w<id>/k<n>".
type lhWorker struct {
	c      *client.Client
	op     string
	run    string
	id     int
	holder string
	batch  int
	n      int         // next fresh key
	keys   []lease.Key // held (extend, revoke, bulk-extend)
	next   int
	nHeld  int
}

// claimKeys claims keys for the worker in bulk calls (untimed setup).
func (c *lhCeilConn) claimKeys(ctx context.Context, keys []lease.Key, holder string, d time.Duration, timeout time.Duration) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		cmds := make([]lease.Command, n)
		for i := range cmds {
			cmds[i] = lease.Command{Op: lease.OpClaim, Key: keys[i], Holder: holder, Duration: d}
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := c.c.Bulk(cctx, cmds)
		cancel()
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return r.Err
			}
		}
		keys = keys[n:]
	}
	return nil
}

func (c *lhCeilConn) worker(ctx context.Context, id int, op string, p ceilParams) (ceilWorker, error) {
	w := &lhWorker{c: c.c, op: op, run: p.run, id: id, holder: fmt.Sprintf("w%d", id), batch: p.batch}
	if p.keys > 0 {
		w.keys = make([]lease.Key, p.keys)
		for i := range w.keys {
			w.keys[i] = lhKey(fmt.Sprintf("%s/w%d/held%d", p.run, id, i))
		}
		if err := c.claimKeys(ctx, w.keys, w.holder, ceilLeaseDuration, 4*p.timeout); err != nil {
			return nil, err
		}
		w.nHeld = len(w.keys)
	}
	if op == "claim-contended" {
		w.run = fmt.Sprintf("%s/g%d", p.run, p.group)
	}
	return w, nil
}

func (w *lhWorker) held() int { return w.nHeld }
func (w *lhWorker) close()    {}

func (w *lhWorker) fresh() lease.Key {
	w.n++
	if w.op == "claim-contended" {
		return lhKey(fmt.Sprintf("%s/k%d", w.run, w.n))
	}
	return lhKey(fmt.Sprintf("%s/w%d/k%d", w.run, w.id, w.n))
}

func (w *lhWorker) do(ctx context.Context) (good, denied, failed int, err error) {
	switch w.op {
	case "claim", "claim-contended":
		_, err = w.c.Claim(ctx, w.fresh(), w.holder, ceilLeaseDuration)
		if err == nil {
			w.nHeld++
			return 1, 0, 0, nil
		}
		if errors.Is(err, lease.ErrDenied) {
			return 1, 1, 0, nil
		}
		return 0, 0, 0, err
	case "extend", "extend-stream":
		k := w.keys[w.next%len(w.keys)]
		w.next++
		extend := w.c.Extend
		if w.op == "extend-stream" {
			extend = w.c.Renewer().Extend // one Renew stream per connection
		}
		if _, err = extend(ctx, k, w.holder, ceilLeaseDuration); err != nil {
			return 0, 0, 0, err
		}
		return 1, 0, 0, nil
	case "revoke":
		if w.next >= len(w.keys) {
			return 0, 0, 0, errExhausted
		}
		k := w.keys[w.next]
		w.next++
		if _, err = w.c.Revoke(ctx, k, w.holder); err != nil {
			return 0, 0, 0, err
		}
		w.nHeld--
		return 1, 0, 0, nil
	case "bulk-claim", "bulk-extend":
		cmds := make([]lease.Command, w.batch)
		for i := range cmds {
			if w.op == "bulk-claim" {
				cmds[i] = lease.Command{Op: lease.OpClaim, Key: w.fresh(), Holder: w.holder, Duration: ceilLeaseDuration}
			} else {
				cmds[i] = lease.Command{Op: lease.OpExtend, Key: w.keys[i], Holder: w.holder, Duration: ceilLeaseDuration}
			}
		}
		res, err := w.c.Bulk(ctx, cmds)
		if err != nil {
			return 0, 0, 0, err
		}
		var firstErr error
		for _, r := range res {
			if r.Err != nil {
				failed++
				firstErr = cmp(firstErr, r.Err)
				continue
			}
			good++
			if w.op == "bulk-claim" {
				w.nHeld++
			}
		}
		return good, 0, failed, firstErr
	}
	return 0, 0, 0, fmt.Errorf("leasehold: op %s not driven", w.op)
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// expire claims p.leases leases of p.ttl in bulk (untimed), then watches
// for their expired events.
func (c *lhCeilConn) expire(ctx context.Context, p ceilParams) (*expireResult, error) {
	ns := "exp" + p.run
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch, err := c.c.Watch(wctx, client.WatchOptions{Namespace: ns})
	if err != nil {
		return nil, err
	}
	defer wch.Close()
	due := make(map[lease.Key]time.Time, p.leases)
	res := &expireResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var setupErr error
	const chunk = 500
	sem := make(chan struct{}, 10)
	for lo := 0; lo < p.leases; lo += chunk {
		hi := min(lo+chunk, p.leases)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cmds := make([]lease.Command, hi-lo)
			for i := range cmds {
				cmds[i] = lease.Command{Op: lease.OpClaim, Key: lhKey(fmt.Sprintf("%s/g/k%d", ns, lo+i)), Holder: "x", Duration: p.ttl}
			}
			cctx, cancel := context.WithTimeout(ctx, 4*p.timeout)
			start := time.Now()
			rs, err := c.c.Bulk(cctx, cmds)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				for i, r := range rs {
					if r.Err != nil {
						err = r.Err
						break
					}
					due[cmds[i].Key] = start.Add(p.ttl)
				}
			}
			if err != nil && setupErr == nil {
				setupErr = err
			}
		})
	}
	wg.Wait()
	if setupErr != nil {
		return nil, setupErr
	}
	if p.onSetup != nil {
		p.onSetup()
	}
	for _, d := range due {
		if res.firstDue.IsZero() || d.Before(res.firstDue) {
			res.firstDue = d
		}
		if d.After(res.lastDue) {
			res.lastDue = d
		}
	}
	// Bounded wait: the last due time plus time for a slow drain.
	deadline := res.lastDue.Add(30*time.Second + time.Duration(p.leases)*time.Second/300)
	stopTimer := time.AfterFunc(time.Until(deadline), cancel)
	defer stopTimer.Stop()
	for len(due) > 0 {
		evs, err := wch.Next()
		if err != nil {
			break // deadline (or a broken watch): the rest are missing
		}
		now := time.Now()
		for _, e := range evs {
			if e.Kind != lease.EventExpired {
				continue
			}
			if d, ok := due[e.Key]; ok {
				res.lags = append(res.lags, now.Sub(d))
				delete(due, e.Key)
				res.lastEvent = now
			}
		}
	}
	res.missing = len(due)
	return res, nil
}
