package fsm

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
	"pgregory.net/rapid"
)

type qModelWaiter struct {
	holder string
	expiry time.Duration
}

// TestPropertyQueuedClaims drives random claims, queued claims, cancels,
// revokes and clock steps (one command per entry) and checks, from the
// results and events alone, against a plain model of the FIFOs:
//   - a grant from a queue goes to the earliest-arrived claimant whose
//     keep-alive has not passed (arrival order; never an expired waiter);
//   - no key ever has two holders (a claimed event only for an unheld key);
//   - a released key with a live claimant is never left unheld;
//   - queued positions match the model.
func TestPropertyQueuedClaims(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := New()
		m.RecordEvents(true)
		keys := []lease.Key{kA, kB}
		holders := []string{"h0", "h1", "h2", "h3"}
		holder := map[lease.Key]string{}
		queues := map[lease.Key][]qModelWaiter{}
		now := time.Duration(0)
		steps := rapid.IntRange(1, 120).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now += time.Duration(rapid.IntRange(0, 4000).Draw(t, "dt_ms")) * time.Millisecond
			k := keys[rapid.IntRange(0, len(keys)-1).Draw(t, "key")]
			h := holders[rapid.IntRange(0, len(holders)-1).Draw(t, "holder")]
			d := time.Duration(rapid.IntRange(1, 6).Draw(t, "dur_s")) * time.Second
			wait := time.Duration(rapid.IntRange(1, 8000).Draw(t, "wait_ms")) * time.Millisecond
			var c lease.Command
			switch rapid.IntRange(0, 5).Draw(t, "op") {
			case 0:
				c = claim(k, h, d)
			case 1, 2:
				c = qclaim(k, h, d, wait)
			case 3:
				c = cancelQ(k, h)
			case 4:
				c = revoke(k, h)
			default:
				c = extend(k, h, d)
			}
			// The model drops claimants whose keep-alive passed before anything.
			for kk, q := range queues {
				queues[kk] = slices.DeleteFunc(q, func(w qModelWaiter) bool { return w.expiry < now })
			}
			res := m.Apply(uint64(i+1), &logentry.Entry{Kind: logentry.KindBatch, Time: now, Commands: []lease.Command{c}})[0]
			for _, ev := range m.TakeEvents() {
				switch ev.Kind {
				case lease.EventRevoked, lease.EventExpired:
					if holder[ev.Key] != ev.Holder {
						t.Fatalf("step %d: %v released by %q, model holder %q", i, ev.Key, ev.Holder, holder[ev.Key])
					}
					delete(holder, ev.Key)
				case lease.EventClaimed:
					if cur := holder[ev.Key]; cur != "" {
						t.Fatalf("step %d: %v granted to %q while %q holds it", i, ev.Key, ev.Holder, cur)
					}
					holder[ev.Key] = ev.Holder
					direct := res.Outcome == lease.OutcomeGranted && ev.Key == c.Key && ev.Holder == c.Holder && ev.Token == res.Token
					if direct {
						if len(queues[ev.Key]) > 0 {
							t.Fatalf("step %d: %v granted to %q past live claimants %v", i, ev.Key, ev.Holder, queues[ev.Key])
						}
						continue
					}
					q := queues[ev.Key]
					if len(q) == 0 || q[0].holder != ev.Holder {
						t.Fatalf("step %d: queue grant of %v to %q, model queue %v", i, ev.Key, ev.Holder, q)
					}
					if q[0].expiry < now {
						t.Fatalf("step %d: grant to expired waiter %+v at %v", i, q[0], now)
					}
					queues[ev.Key] = q[1:]
				}
			}
			switch res.Outcome {
			case lease.OutcomeQueued:
				q := queues[c.Key]
				j := slices.IndexFunc(q, func(w qModelWaiter) bool { return w.holder == c.Holder })
				if j < 0 {
					q = append(q, qModelWaiter{c.Holder, now + c.Wait})
					j = len(q) - 1
				} else {
					q[j].expiry = max(q[j].expiry, now+c.Wait)
				}
				queues[c.Key] = q
				if res.Position != j+1 || res.WaitExpiry != q[j].expiry || res.Holder != holder[c.Key] {
					t.Fatalf("step %d: queued %+v, model position %d expiry %v holder %q", i, res, j+1, q[j].expiry, holder[c.Key])
				}
			case lease.OutcomeDequeued, lease.OutcomeAbsent:
				if c.Op != lease.OpCancelQueue {
					break
				}
				q := queues[c.Key]
				j := slices.IndexFunc(q, func(w qModelWaiter) bool { return w.holder == c.Holder })
				if (j >= 0) != (res.Outcome == lease.OutcomeDequeued) {
					t.Fatalf("step %d: cancel %+v, model queue %v", i, res, q)
				}
				if j >= 0 {
					queues[c.Key] = slices.Delete(q, j, j+1)
				}
			}
			for _, kk := range keys {
				if holder[kk] == "" && len(queues[kk]) > 0 {
					t.Fatalf("step %d: %v unheld with live claimants %v", i, kk, queues[kk])
				}
				if got, ok := m.Get(kk, 0); ok != (holder[kk] != "") || got.Holder != holder[kk] {
					t.Fatalf("step %d: %v state %+v, model holder %q", i, kk, got, holder[kk])
				}
			}
			checkHeap(t, m)
		}
		// Queues survive a snapshot: a restored twin stays byte-identical
		// through the next release.
		twin := New()
		if err := twin.Restore(m.AppendSnapshot(nil)); err != nil {
			t.Fatal(err)
		}
		later := &logentry.Entry{Kind: logentry.KindBatch, Time: now + 7*time.Second}
		m.Apply(uint64(steps+1), later)
		twin.Apply(uint64(steps+1), later)
		if !bytes.Equal(m.AppendSnapshot(nil), twin.AppendSnapshot(nil)) {
			t.Fatal("restored twin diverged")
		}
	})
}
