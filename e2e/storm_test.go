package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/lease"
)

// TestClaimStormAgainstRenewals is issue 5's cluster test: on a 3-node
// cluster with fsync on, holders keep 500 leases renewed on time with bulk
// extends while other callers offer bulk claims of new keys as fast as they
// can. Every extend must succeed before its lease could have expired (by
// the holder's own conservative reckoning: send time of the last good
// extend + duration), and the claims the cluster cannot take must be
// refused with Overloaded, not left to time out: few of the offered
// claims may end DeadlineExceeded or Unknown: fewer than the Overloaded (see the bound below).
//
// LEASEHOLD_E2E_STORM=30s lengthens the storm (default 5s);
// LEASEHOLD_E2E_STORM_MARGIN=250ms sets the queue's DeadlineMargin (20 ms).
func TestClaimStormAgainstRenewals(t *testing.T) {
	stormFor := 5 * time.Second
	if v := os.Getenv("LEASEHOLD_E2E_STORM"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		stormFor = d
	}
	const (
		managers    = 10
		perManager  = 50 // 500 leases
		leaseFor    = 5 * time.Second
		renewEvery  = time.Second
		stormers    = 16
		claimsPerRq = 500
		claimTTL    = 2 * time.Second
		claimFor    = time.Second
		// stormOpsPerEntry sizes entries; see the cluster options below.
		stormOpsPerEntry = 64
	)
	qs := &queueStats{}
	e := start(t, func(o *devcluster.Options) {
		// Production Raft timeouts: the fast test ones (300 ms) are below
		// what a CPU-saturated 2-core machine can keep up with.
		fast := o.Raft
		o.Raft = func(c *replica.Config) {
			fast(c)
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 0, 0, 0
			c.TickInterval = 0
		}
		// Scale the log's capacity down (64 ops per entry, 3 in flight) so
		// that what two cores of gRPC can offer exceeds it: with the
		// default 1024 ops per entry the API, not the log, saturates first
		// and the queue never has to push back.
		s := admission.DefaultSettings()
		s.MaxOpsPerEntry = stormOpsPerEntry
		if v := os.Getenv("LEASEHOLD_E2E_STORM_MARGIN"); v != "" {
			s.DeadlineMargin, _ = time.ParseDuration(v)
		}
		o.Node = backend.Options{Admission: s, Hooks: qs.hooks()}
	})
	// A 20 ms disk caps the log at a few thousand ops/s whatever the
	// machine, so the storm below always exceeds capacity.
	for _, ps := range e.stores {
		ps.writeDelay.Store(int64(20 * time.Millisecond))
	}
	ctx := ctxFor(t, 2*time.Minute)
	renewer := newClient(t, client.Config{Endpoints: e.endpoints()})

	type held struct {
		keys     []lease.Key
		believed time.Time // earliest moment a lease may have expired
	}
	hs := make([]*held, managers)
	for m := range managers {
		h := &held{}
		var cmds []lease.Command
		for i := range perManager {
			k := key("held", fmt.Sprintf("m%d-%d", m, i))
			h.keys = append(h.keys, k)
			cmds = append(cmds, lease.Command{Op: lease.OpClaim, Key: k, Holder: fmt.Sprintf("mgr/%d", m), Duration: leaseFor})
		}
		sent := time.Now()
		res, err := renewer.Bulk(ctx, cmds)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("initial claim %d: %v", i, r.Err)
			}
		}
		h.believed = sent.Add(leaseFor)
		hs[m] = h
	}

	// Renewers: each manager extends all its leases in one bulk call per
	// renewEvery, with a deadline at its leases' believed expiry.
	var (
		renewOps, renewFail atomic.Int64
		renewMu             sync.Mutex
		renewLat            []time.Duration
		failures            []string
	)
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for m, h := range hs {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			tick := time.NewTicker(renewEvery)
			defer tick.Stop()
			holder := fmt.Sprintf("mgr/%d", m)
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				cmds := make([]lease.Command, len(h.keys))
				for i, k := range h.keys {
					cmds[i] = lease.Command{Op: lease.OpExtend, Key: k, Holder: holder, Duration: leaseFor}
				}
				sent := time.Now()
				rctx, cancel := context.WithDeadline(ctx, h.believed)
				res, err := renewer.Bulk(rctx, cmds)
				cancel()
				took := time.Since(sent)
				renewMu.Lock()
				renewLat = append(renewLat, took)
				bad := 0
				switch {
				case err != nil:
					bad = len(cmds)
					failures = append(failures, fmt.Sprintf("%s round %d: %v", holder, round, err))
				default:
					for i, r := range res {
						if r.Err != nil {
							bad++
							failures = append(failures, fmt.Sprintf("%s round %d op %d: %v", holder, round, i, r.Err))
						}
					}
				}
				if bad == 0 && time.Now().After(h.believed) {
					bad = len(cmds)
					failures = append(failures, fmt.Sprintf("%s round %d: answered after the leases' believed expiry", holder, round))
				}
				renewMu.Unlock()
				renewOps.Add(int64(len(cmds)))
				renewFail.Add(int64(bad))
				if bad == 0 {
					h.believed = sent.Add(leaseFor)
				}
			}
		}()
	}

	// The storm: bulk claims of fresh keys, no pause, few retries, so the
	// counts are the cluster's own answers.
	stormer := newClient(t, client.Config{Endpoints: e.endpoints(), RetryRatio: 0.001, RetryBurst: 0.001})
	var (
		smu     sync.Mutex
		byCode  = map[lease.Code]int{}
		offered int
		calls   int
	)
	stormEnd := time.Now().Add(stormFor)
	var swg sync.WaitGroup
	for s := range stormers {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for n := 0; time.Now().Before(stormEnd) && n < 100_000; n++ {
				cmds := make([]lease.Command, claimsPerRq)
				for i := range cmds {
					cmds[i] = lease.Command{Op: lease.OpClaim, Key: key("storm", fmt.Sprintf("s%d-%d-%d", s, n, i)), Holder: "storm", Duration: claimFor}
				}
				sctx, cancel := context.WithTimeout(ctx, claimTTL)
				res, err := stormer.Bulk(sctx, cmds)
				cancel()
				local := map[lease.Code]int{}
				if err != nil {
					local[codeOf(t, err)] += len(cmds)
				} else {
					for _, r := range res {
						local[codeOf(t, r.Err)]++
					}
				}
				smu.Lock()
				for c, k := range local {
					byCode[c] += k
				}
				offered += len(cmds)
				calls++
				smu.Unlock()
			}
		}()
	}
	swg.Wait()
	// One more renewal round after the storm, then stop the renewers.
	waitFor(t, 3*renewEvery, "a renewal round after the storm", func() bool {
		renewMu.Lock()
		defer renewMu.Unlock()
		return len(renewLat) >= managers*int(stormFor/renewEvery+1)
	})
	close(stop)
	rwg.Wait()

	sort.Slice(renewLat, func(i, j int) bool { return renewLat[i] < renewLat[j] })
	var lines []string
	for c, n := range byCode {
		lines = append(lines, fmt.Sprintf("%s=%d", c, n))
	}
	sort.Strings(lines)
	t.Logf("storm: %d claim ops offered in %d bulk calls over %v: %s", offered, calls, stormFor, strings.Join(lines, " "))
	t.Logf("renewals: %d extend ops in %d bulk rounds, %d failed; latency p50 %v p99 %v max %v",
		renewOps.Load(), len(renewLat), renewFail.Load(),
		renewLat[len(renewLat)/2], renewLat[len(renewLat)*99/100], renewLat[len(renewLat)-1])

	t.Logf("leader's queue: %s", qs)

	if renewFail.Load() != 0 {
		t.Errorf("%d extends failed or came late; first: %v", renewFail.Load(), failures[:min(5, len(failures))])
	}
	if byCode[lease.CodeOverloaded] == 0 {
		t.Errorf("no claim was refused Overloaded: the storm did not exceed capacity (%v)", byCode)
	}
	// The bound is loose because on a shared 2-core machine commit latency
	// swings from ~10 ms to ~400 ms, and the drain-rate estimate (smoothed
	// latency) admits claims a spike then makes miss their deadline: the
	// queue drops them unproposed (DeadlineExceeded, not applied), and when
	// that verdict reaches the client after its own deadline it reads
	// Unknown. Measured: 3-8% of offered claims; see docs/testing.md.
	lost := byCode[lease.CodeDeadlineExceeded] + byCode[lease.CodeUnknown]
	if lost*10 > offered || lost > byCode[lease.CodeOverloaded] {
		t.Errorf("%d of %d claims timed out or ended unknown (bound: 10%% and fewer than the %d overloaded)", lost, offered, byCode[lease.CodeOverloaded])
	}
	for c, n := range byCode {
		switch c {
		case lease.CodeOK, lease.CodeOverloaded, lease.CodeDeadlineExceeded, lease.CodeUnknown:
		default:
			t.Errorf("%d claims ended %v", n, c)
		}
	}
}

// queueStats gathers the admission queues' metric hooks (all members; only
// the leader's queue sees traffic).
type queueStats struct {
	mu          sync.Mutex
	entries     int
	ops         int
	maxCommit   time.Duration
	maxWait     [2]time.Duration
	rejected    map[string]int
	entryErrors int
}

func (s *queueStats) hooks() admission.Hooks {
	s.rejected = map[string]int{}
	return admission.Hooks{
		Wait: func(l admission.Lane, d time.Duration) {
			s.mu.Lock()
			s.maxWait[l] = max(s.maxWait[l], d)
			s.mu.Unlock()
		},
		Committed: func(ops int, d time.Duration, err error) {
			s.mu.Lock()
			s.entries++
			s.ops += ops
			s.maxCommit = max(s.maxCommit, d)
			if err != nil {
				s.entryErrors++
			}
			s.mu.Unlock()
		},
		Rejected: func(r admission.Reason, l admission.Lane, n int) {
			s.mu.Lock()
			s.rejected[r.String()+"/"+l.String()] += n
			s.mu.Unlock()
		},
	}
}

func (s *queueStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d entries, %d ops, %d entry errors, max commit %v, max queue wait renewal %v claim %v, rejected %v",
		s.entries, s.ops, s.entryErrors, s.maxCommit, s.maxWait[admission.LaneRenewal], s.maxWait[admission.LaneClaim], s.rejected)
}
