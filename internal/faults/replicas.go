package faults

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/linearize"
	"github.com/leasehold/leasehold/lease"
)

// Invariant 8 (DESIGN.md): at one applied index every replica holds the
// same leases, tokens and times, whatever its flags and whether it got
// there by replaying the log or by installing a snapshot. The final-state
// comparison after a run cannot see a divergence that healed before the end
// (a lease one replica never had has expired everywhere by then), so the
// suite samples every replica while the load runs: a stale List answers
// with the replica's own applied index, and the state at an index is a
// function of the log, so two samples at one index must be equal whenever
// and wherever they were taken.

// ReplicaDiff is two replicas that held different states at one applied index.
type ReplicaDiff struct {
	Index uint64
	A, B  string // server IDs
	What  string
}

func (d ReplicaDiff) String() string {
	return fmt.Sprintf("replicas %s and %s differ at applied index %d: %s", d.A, d.B, d.Index, d.What)
}

// CompareReplicas compares every two samples from different servers taken
// at the same applied index (Leases and Now; Snapshot is not used). It
// returns the differences and how many (index, pair) comparisons it made.
// It is a pure function of its input.
func CompareReplicas(samples []linearize.Replica) (diffs []ReplicaDiff, compared int) {
	byIndex := map[uint64]map[string]linearize.Replica{}
	for _, s := range samples {
		m := byIndex[s.Index]
		if m == nil {
			m = map[string]linearize.Replica{}
			byIndex[s.Index] = m
		}
		if _, ok := m[s.ID]; !ok {
			m[s.ID] = s
		}
	}
	for _, idx := range slices.Sorted(maps.Keys(byIndex)) {
		ids := slices.Sorted(maps.Keys(byIndex[idx]))
		for i, a := range ids {
			for _, b := range ids[i+1:] {
				compared++
				if w := diffReplica(byIndex[idx][a], byIndex[idx][b]); w != "" {
					diffs = append(diffs, ReplicaDiff{Index: idx, A: a, B: b, What: w})
				}
			}
		}
	}
	return diffs, compared
}

func diffReplica(a, b linearize.Replica) string {
	la, lb := leaseMap(a.Leases), leaseMap(b.Leases)
	for _, k := range slices.SortedFunc(maps.Keys(la), cmpKey) {
		if x, ok := lb[k]; !ok {
			return fmt.Sprintf("%s: %+v vs absent", k, la[k])
		} else if x != la[k] {
			return fmt.Sprintf("%s: %+v vs %+v", k, la[k], x)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(lb), cmpKey) {
		if _, ok := la[k]; !ok {
			return fmt.Sprintf("%s: absent vs %+v", k, lb[k])
		}
	}
	if a.Now != b.Now {
		return fmt.Sprintf("replicated time %v vs %v", a.Now, b.Now)
	}
	return ""
}

func cmpKey(a, b lease.Key) int { return cmp.Compare(a.String(), b.String()) }

func leaseMap(ls []lease.Info) map[lease.Key]lease.Info {
	m := make(map[lease.Key]lease.Info, len(ls))
	for _, l := range ls {
		m[l.Key] = l
	}
	return m
}

// replicaReader reads one server's state by a stale List of the suite's
// namespace (both keyed and waiter keys), answered from that server's own
// applied state.
type replicaReader struct {
	id string
	c  *client.Client // talks to this server only
}

func (r replicaReader) read(ctx context.Context) (linearize.Replica, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ls, meta, err := r.c.ListAll(ctx, client.ListOptions{Namespace: Key(0).Namespace, Stale: true})
	if err != nil {
		return linearize.Replica{}, err
	}
	rep := linearize.Replica{ID: r.id, Index: meta.AppliedIndex, Now: meta.Now}
	for _, l := range ls {
		rep.Leases = append(rep.Leases, l.Info)
	}
	return rep, nil
}

// sampler reads every server's state over and over while the load runs.
type sampler struct {
	mu      sync.Mutex
	samples []linearize.Replica
}

// run samples the readers every interval until ctx is done. A server that
// is down or paused just gives no sample.
func (s *sampler) run(ctx context.Context, readers []replicaReader, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var wg sync.WaitGroup
		for _, r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rep, err := r.read(ctx); err == nil {
					s.mu.Lock()
					s.samples = append(s.samples, rep)
					s.mu.Unlock()
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) all() []linearize.Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}
