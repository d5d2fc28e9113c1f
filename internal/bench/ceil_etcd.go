package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// The ceilings mode drives etcd as its users do (concurrency.Election) and
// as its own tools/benchmark does:
//
//   - every worker holds one concurrency.Session: a lease (TTL 60 s) kept
//     alive by clientv3's streaming KeepAlive;
//   - claim is Campaign's one Txn: If(CreateRevision(k) == 0)
//     Then(Put(k, holder, WithLease(session))) Else(Get(k));
//   - revoke is Resign's compare-and-delete Txn:
//     If(CreateRevision(k) == rev) Then(Delete(k));
//   - extend is KeepAliveOnce of the session lease (tools/benchmark's
//     lease-keepalive); extend-stream sends keepalives on a long-lived
//     LeaseKeepAlive stream of the worker's own, one outstanding;
//   - bulk-claim is one Txn of up to 127 nested claim Txns (etcd's MaxTxnOps
//     is 128); there is no batched renewal in etcd's API.
//
// Endpoints are all members, as users configure them; the etcd-leader
// target pins the client to the leader.

const etcdSessionTTL = 60

func (t *etcdTarget) ceilSupports(op string) (bool, string) {
	if op == "bulk-extend" {
		return false, "etcd's API has no batched renewal (its streaming keepalive, extend-stream, is its best renewal path)"
	}
	return true, ""
}

func (t *etcdTarget) ceilMaxBatch() int { return 127 }

func (t *etcdTarget) ceilConn(ctx context.Context, o ceilConnOpts) (ceilConn, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: o.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd: client: %w", err)
	}
	return &etcdCeilConn{cli: cli}, nil
}

type etcdCeilConn struct{ cli *clientv3.Client }

func (c *etcdCeilConn) Close() error { return c.cli.Close() }

type etcdWorker struct {
	cli    *clientv3.Client
	sess   *concurrency.Session
	op     string
	prefix string
	holder string
	batch  int
	n      int
	keys   []string
	revs   []int64
	next   int
	nHeld  int

	// extend-stream
	stream       pb.Lease_LeaseKeepAliveClient
	streamCancel context.CancelFunc
}

func (c *etcdCeilConn) worker(ctx context.Context, id int, op string, p ceilParams) (ceilWorker, error) {
	sctx, cancel := context.WithTimeout(ctx, 4*p.timeout)
	defer cancel()
	sess, err := concurrency.NewSession(c.cli, concurrency.WithTTL(etcdSessionTTL), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, err
	}
	w := &etcdWorker{cli: c.cli, sess: sess, op: op, holder: fmt.Sprintf("w%d", id), batch: p.batch,
		prefix: fmt.Sprintf("/%s/w%d/", p.run, id)}
	if op == "claim-contended" {
		w.prefix = fmt.Sprintf("/%s/g%d/", p.run, p.group)
	}
	// Held keys (revoke): Txns of up to 127 puts with the session lease;
	// each key's create revision is the Txn's revision.
	if p.keys > 0 && op == "revoke" {
		for lo := 0; lo < p.keys; lo += 127 {
			hi := min(lo+127, p.keys)
			var ops []clientv3.Op
			var ks []string
			for i := lo; i < hi; i++ {
				k := fmt.Sprintf("%sheld%d", w.prefix, i)
				ks = append(ks, k)
				ops = append(ops, clientv3.OpPut(k, w.holder, clientv3.WithLease(sess.Lease())))
			}
			resp, err := c.cli.Txn(sctx).Then(ops...).Commit()
			if err != nil {
				w.close()
				return nil, err
			}
			for _, k := range ks {
				w.keys, w.revs = append(w.keys, k), append(w.revs, resp.Header.Revision)
			}
		}
		w.nHeld = len(w.keys)
	}
	if op == "extend" || op == "extend-stream" {
		w.nHeld = 1 // the session lease
	}
	return w, nil
}

func (w *etcdWorker) held() int { return w.nHeld }

func (w *etcdWorker) close() {
	if w.streamCancel != nil {
		w.streamCancel()
	}
	w.sess.Orphan() // stop the keepalive; the cluster is torn down next
}

func (w *etcdWorker) claimTxn(k string) clientv3.Op {
	return clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(k, w.holder, clientv3.WithLease(w.sess.Lease()))},
		[]clientv3.Op{clientv3.OpGet(k)})
}

func (w *etcdWorker) fresh() string {
	w.n++
	return fmt.Sprintf("%sk%d", w.prefix, w.n)
}

func (w *etcdWorker) do(ctx context.Context) (good, denied, failed int, err error) {
	switch w.op {
	case "claim", "claim-contended":
		k := w.fresh()
		resp, err := w.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, w.holder, clientv3.WithLease(w.sess.Lease()))).
			Else(clientv3.OpGet(k)).
			Commit()
		if err != nil {
			return 0, 0, 0, err
		}
		if !resp.Succeeded {
			return 1, 1, 0, nil
		}
		w.nHeld++
		return 1, 0, 0, nil
	case "extend":
		ka, err := w.cli.KeepAliveOnce(ctx, w.sess.Lease())
		if err != nil {
			return 0, 0, 0, err
		}
		if ka.TTL <= 0 {
			return 0, 0, 0, errors.New("etcd: session lease expired")
		}
		return 1, 0, 0, nil
	case "extend-stream":
		return w.streamKeepAlive(ctx)
	case "revoke":
		if w.next >= len(w.keys) {
			return 0, 0, 0, errExhausted
		}
		k, rev := w.keys[w.next], w.revs[w.next]
		w.next++
		resp, err := w.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", rev)).Then(clientv3.OpDelete(k)).Commit()
		if err != nil {
			return 0, 0, 0, err
		}
		if !resp.Succeeded {
			return 0, 0, 1, errors.New("etcd: resign found the key changed")
		}
		w.nHeld--
		return 1, 0, 0, nil
	case "bulk-claim":
		ops := make([]clientv3.Op, w.batch)
		for i := range ops {
			ops[i] = w.claimTxn(w.fresh())
		}
		resp, err := w.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return 0, 0, 0, err
		}
		for _, r := range resp.Responses {
			if t := r.GetResponseTxn(); t != nil && t.Succeeded {
				good++
				w.nHeld++
			} else {
				good, denied = good+1, denied+1
			}
		}
		return good, denied, 0, nil
	}
	return 0, 0, 0, fmt.Errorf("etcd: op %s not driven", w.op)
}

// streamKeepAlive sends one keepalive of the session lease on the worker's
// long-lived LeaseKeepAlive stream and waits for its answer. A stream
// broken by a deadline is reopened on the next call.
func (w *etcdWorker) streamKeepAlive(ctx context.Context) (int, int, int, error) {
	if w.stream == nil {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s, err := clientv3.RetryLeaseClient(w.cli).LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return 0, 0, 0, err
		}
		w.stream, w.streamCancel = s, cancel
	}
	broken := func(err error) (int, int, int, error) {
		w.streamCancel()
		w.stream, w.streamCancel = nil, nil
		return 0, 0, 0, err
	}
	stopWatch := context.AfterFunc(ctx, w.streamCancel) // the call's deadline ends the stream
	defer stopWatch()
	if err := w.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(w.sess.Lease())}); err != nil {
		return broken(err)
	}
	resp, err := w.stream.Recv()
	if err != nil {
		return broken(err)
	}
	if resp.TTL <= 0 {
		return 0, 0, 0, errors.New("etcd: session lease expired")
	}
	return 1, 0, 0, nil
}

// expire grants p.leases leases of p.ttl (p.par at a time), attaches a key
// to each (Txns of 127 puts), then watches the prefix for the deletes that
// etcd's expiry makes.
func (c *etcdCeilConn) expire(ctx context.Context, p ceilParams) (*expireResult, error) {
	prefix := "/exp" + p.run + "/"
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := c.cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithFilterPut())
	ttl := int64((p.ttl + time.Second - 1) / time.Second)
	ids := make([]clientv3.LeaseID, p.leases)
	dueOf := make(map[string]time.Time, p.leases)
	var mu sync.Mutex
	var setupErr error
	var wg sync.WaitGroup
	next := 0
	for range p.par {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= p.leases {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, p.timeout)
				start := time.Now()
				g, err := c.cli.Grant(cctx, ttl)
				cancel()
				mu.Lock()
				if err != nil {
					if setupErr == nil {
						setupErr = err
					}
					mu.Unlock()
					return
				}
				ids[i] = g.ID
				dueOf[fmt.Sprintf("%sk%d", prefix, i)] = start.Add(time.Duration(ttl) * time.Second)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if setupErr != nil {
		return nil, setupErr
	}
	for lo := 0; lo < p.leases; lo += 127 {
		var ops []clientv3.Op
		for i := lo; i < min(lo+127, p.leases); i++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sk%d", prefix, i), "x", clientv3.WithLease(ids[i])))
		}
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		_, err := c.cli.Txn(cctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, err
		}
	}
	if p.onSetup != nil {
		p.onSetup()
	}
	res := &expireResult{}
	for _, d := range dueOf {
		if res.firstDue.IsZero() || d.Before(res.firstDue) {
			res.firstDue = d
		}
		if d.After(res.lastDue) {
			res.lastDue = d
		}
	}
	deadline := res.lastDue.Add(30*time.Second + time.Duration(p.leases)*time.Second/300)
	stopTimer := time.AfterFunc(time.Until(deadline), cancel)
	defer stopTimer.Stop()
	for len(dueOf) > 0 {
		wr, ok := <-wch
		if !ok || wr.Err() != nil {
			break
		}
		now := time.Now()
		for _, e := range wr.Events {
			if e.Type != mvccpb.DELETE {
				continue
			}
			if d, ok := dueOf[string(e.Kv.Key)]; ok {
				res.lags = append(res.lags, now.Sub(d))
				delete(dueOf, string(e.Kv.Key))
				res.lastEvent = now
			}
		}
	}
	res.missing = len(dueOf)
	return res, nil
}
