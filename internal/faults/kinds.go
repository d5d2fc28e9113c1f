package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/replica"
)

// Kind is one fault the suite injects, over and over, while the workload
// runs: Inject applies it to the cluster as it is now and returns after
// holding it; Heal undoes it. The bounds say how far clocks may stray under it.
type Kind struct {
	Name   string
	Doc    string
	Bounds Bounds
	// Restarts marks kinds that restart servers from their data.
	Restarts bool
	// Cycle injects the fault once, holds it, heals it; ctx bounds it.
	Cycle func(ctx context.Context, e *Env) error
	// Procs, set instead of Cycle, is the cycle of a fault that needs the
	// servers as separate processes (ProcEnv; Linux only).
	Procs func(ctx context.Context, e *ProcEnv) error
	// MinSlice is the shortest load slice the fault plays out in.
	MinSlice time.Duration
	// Raft adjusts every in-process server's Raft configuration for this
	// kind (after testutil.FastRaft).
	Raft func(*replica.Config)
	// ServerArgs are extra command-line flags of process server i (0-based).
	ServerArgs func(i int) []string
	// Workload adjusts the workload for this kind.
	Workload func(*Workload)
}

// hold waits d or until ctx is done.
func hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (e *Env) leader(ctx context.Context) (string, int, error) {
	m, err := e.WaitLeader(ctx, 15*time.Second)
	if err != nil {
		return "", 0, fmt.Errorf("no leader: %w", err)
	}
	return m.ID, m.Index, nil
}

// kill stops member i as a crash would: cut off from its peers first, so it
// cannot hand over leadership, then shut down.
func (e *Env) kill(ctx context.Context, i int, down time.Duration) error {
	id := e.C.Members[i].ID
	e.Net.Cut(id, e.IDs(id)...)
	err := e.C.Stop(i)
	e.Net.Heal()
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	hold(ctx, down)
	if err := e.C.Restart(i); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	return nil
}

// Kinds are the in-process fault kinds.
var Kinds = []Kind{
	{Name: "leader-kill", Doc: "crash the leader (cut from its peers, then shut down), keep it down 1 s, restart it on its data", Restarts: true,
		Cycle: func(ctx context.Context, e *Env) error {
			_, i, err := e.leader(ctx)
			if err != nil {
				return err
			}
			return e.kill(ctx, i, time.Second)
		}},
	{Name: "follower-kill", Doc: "crash a follower, keep it down 1 s, restart it", Restarts: true,
		Cycle: func(ctx context.Context, e *Env) error {
			_, i, err := e.leader(ctx)
			if err != nil {
				return err
			}
			return e.kill(ctx, (i+1)%len(e.C.Members), time.Second)
		}},
	{Name: "partition-leader", Doc: "cut the leader's Raft links to both peers (clients still reach it) for 1.5 s; a new leader is elected on the other side",
		Cycle: func(ctx context.Context, e *Env) error {
			id, _, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Net.SetBlackhole(true)
			e.Net.Cut(id, e.IDs(id)...)
			hold(ctx, 1500*time.Millisecond)
			e.Net.Heal()
			return nil
		}},
	{Name: "partition-clients", Doc: "cut every client off from the leader (its Raft links stay up) for 1.5 s: followers can only point at an unreachable leader",
		Cycle: func(ctx context.Context, e *Env) error {
			_, i, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Clients.Cut(e.C.Members[i].ClientAddr)
			hold(ctx, 1500*time.Millisecond)
			e.Clients.Heal()
			return nil
		}},
	{Name: "disk-slow", Doc: "slow every log write on the leader by 100 ms for 2 s",
		Cycle: func(ctx context.Context, e *Env) error {
			id, _, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Disk(id).SetDelay(100 * time.Millisecond)
			hold(ctx, 2*time.Second)
			e.Disk(id).Release()
			hold(ctx, 500*time.Millisecond)
			return nil
		}},
	{Name: "disk-stall-deposed", Doc: "stall the leader's log writes, cut it off so a new leader is elected, heal the network, then after 1 s release the disk (etcd #15247: the deposed leader wakes up with proposals in hand)",
		Cycle: func(ctx context.Context, e *Env) error {
			id, _, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Disk(id).Stall()
			e.Net.Cut(id, e.IDs(id)...)
			hold(ctx, time.Second)
			e.Net.Heal()
			hold(ctx, time.Second)
			e.Disk(id).Release()
			hold(ctx, 500*time.Millisecond)
			return nil
		}},
	{Name: "clock-fast", Doc: "run the leader's monotonic clock at 1.25x real time for 3 s", Bounds: Bounds{Rate: 1.25},
		Cycle: func(ctx context.Context, e *Env) error {
			id, _, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Clock(id).SetRate(1.25)
			hold(ctx, 3*time.Second)
			e.Clock(id).SetRate(1)
			return nil
		}},
	{Name: "clock-slow", Doc: "run the leader's monotonic clock at 0.5x real time for 3 s (leases stretch)",
		Cycle: func(ctx context.Context, e *Env) error {
			id, _, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Clock(id).SetRate(0.5)
			hold(ctx, 3*time.Second)
			e.Clock(id).SetRate(1)
			return nil
		}},
	{Name: "clock-jump", Doc: "jump the leader's monotonic clock forward 500 ms, then 2 s later back 500 ms", Bounds: Bounds{Jump: 500 * time.Millisecond},
		Cycle: func(ctx context.Context, e *Env) error {
			id, _, err := e.leader(ctx)
			if err != nil {
				return err
			}
			e.Clock(id).Jump(500 * time.Millisecond)
			hold(ctx, 2*time.Second)
			e.Clock(id).Jump(-500 * time.Millisecond)
			hold(ctx, 2*time.Second)
			return nil
		}},
	{Name: "leader-churn", Doc: "transfer leadership every 700 ms",
		Cycle: func(ctx context.Context, e *Env) error {
			_, i, err := e.leader(ctx)
			if err != nil {
				return err
			}
			if r := e.C.Members[i].Raft(); r != nil {
				r.Raft().LeadershipTransfer().Error()
			}
			hold(ctx, 700*time.Millisecond)
			return nil
		}},
	{Name: "net-delay", Doc: "delay every Raft message by 30 ms for 3 s",
		Cycle: func(ctx context.Context, e *Env) error {
			e.Net.SetDelay(30 * time.Millisecond)
			hold(ctx, 3*time.Second)
			e.Net.Heal()
			hold(ctx, 500*time.Millisecond)
			return nil
		}},
}

// KindByName finds a kind.
func KindByName(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}
