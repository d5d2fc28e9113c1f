package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Run starts a cluster in dir, runs w against it while kind's fault cycles
// over and over, heals everything, lets the cluster settle, and checks the
// history against the replicas' final states.
func Run(ctx context.Context, dir string, kind Kind, w Workload) (out *Outcome, err error) {
	if kind.Workload != nil {
		kind.Workload(&w)
	}
	if kind.Procs != nil {
		return runProcs(ctx, dir, kind, w)
	}
	e, err := StartEnv(ctx, dir, kind.Raft)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, e.closeWithin(time.Minute)) }()
	h := newHistory()
	cl, closeClients, err := e.clients()
	if err != nil {
		return nil, err
	}
	defer closeClients()
	faultErr, loadErr := drive(ctx, h, w, cl, func(ctx context.Context) error { return kind.Cycle(ctx, e) })
	if err := e.settle(ctx); err != nil {
		return nil, err
	}
	if open := h.rec.Open(); open != 0 {
		return nil, fmt.Errorf("%d calls never returned", open)
	}
	out = Check(kind.Name, h, e.Replicas(), kind.Bounds)
	if c := e.counted(); c != "" {
		out.addNote(c)
	}
	if faultErr != nil {
		return out, fmt.Errorf("fault %s: %w", kind.Name, faultErr)
	}
	return out, loadErr
}

// drive runs the workload against the cluster while cycle injects its fault
// over and over (from 300 ms after the load starts, so the load is under
// way), and stops both when the workload ends. It returns the first fault
// error and the workload's error.
func drive(ctx context.Context, h *History, w Workload, cl Clients, cycle func(context.Context) error) (faultErr, loadErr error) {
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	done := make(chan error, 1)
	go func() {
		hold(loadCtx, 300*time.Millisecond)
		for loadCtx.Err() == nil {
			if err := cycle(loadCtx); err != nil && loadCtx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	loadErr = w.Run(loadCtx, h, cl)
	stopLoad()
	return <-done, loadErr
}

// settle heals every fault, restarts stopped servers and waits until every
// replica has applied what the leader has.
func (e *Env) settle(ctx context.Context) error {
	for _, d := range e.disks {
		d.Release()
	}
	for _, c := range e.clocks {
		c.SetRate(1)
	}
	e.Net.Heal()
	e.Clients.Heal()
	e.Waiters.Heal()
	for i, m := range e.C.Members {
		if !m.Running() {
			if err := e.C.Restart(i); err != nil {
				return err
			}
		}
	}
	l, err := e.WaitLeader(ctx, 20*time.Second)
	if err != nil {
		return fmt.Errorf("no leader after healing: %w", err)
	}
	target := l.Raft().State().CommitIndex
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var behind []string
		for _, m := range e.C.Members {
			if r := m.Raft(); r == nil {
				behind = append(behind, m.ID+" down")
			} else if st := r.State(); st.AppliedIndex < target {
				behind = append(behind, fmt.Sprintf("%s applied %d, last log index %d", m.ID, st.AppliedIndex, r.Raft().LastIndex()))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			// A follower whose log stops while heartbeats go on is
			// hashicorp/raft's pipeline deadlock (hashicorp/raft#612).
			return fmt.Errorf("replicas did not catch up to the leader's (%s) commit index %d in 20 s: %s", l.ID, target, strings.Join(behind, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeWithin stops the cluster, giving up after d: a Raft shutdown that
// never returns (hashicorp/raft's pipeline deadlock: a replication
// goroutine parked for good on a pipeline whose decoder has exited) then
// fails the run, with every goroutine's stack saved to a file, instead of
// hanging the test binary until its timeout.
func (e *Env) closeWithin(d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	path := filepath.Join(os.TempDir(), fmt.Sprintf("faults-shutdown-hang-%d-%d.txt", os.Getpid(), time.Now().UnixNano()))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		path = "(not saved: " + err.Error() + ")"
	}
	return fmt.Errorf("cluster shutdown still blocked after %v (goroutines: %s)", d, path)
}
