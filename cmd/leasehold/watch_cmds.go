package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

func initWatchCmds() {
	{
		var f clientFlags
		var from uint64
		var count int
		var extends bool
		cmd := newClientCmd("watch [PREFIX]", "Stream lease events (PREFIX: NAMESPACE[/GROUP[/NAME]])", cobra.MaximumNArgs(1), &f)
		cmd.Flags().Uint64Var(&from, "from", 0, "start at this log index (0: from now on)")
		cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (0: run until interrupted)")
		cmd.Flags().BoolVar(&extends, "extends", false, "also stream extends (renewals); a server records them only while a watch asks")
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return run(&f, func(ctx context.Context, c *client.Client, p *printer) error {
				o := client.WatchOptions{StartIndex: from, Extends: extends}
				if len(args) == 1 {
					parts := strings.SplitN(args[0], "/", 3)
					parts = append(parts, "", "")
					o.Namespace, o.Group, o.Name = parts[0], parts[1], parts[2]
				}
				w, err := c.Watch(ctx, o)
				if err != nil {
					return watchErr(err)
				}
				defer w.Close()
				if !p.json {
					fmt.Fprintln(p.stderr, "watching; Ctrl-C to stop")
				}
				for seen := 0; count == 0 || seen < count; {
					evs, err := w.Next()
					if err != nil {
						if ctx.Err() != nil {
							return nil // interrupted: a normal end of a watch
						}
						return err
					}
					for i := range evs {
						p.event(&evs[i])
						if seen++; count > 0 && seen == count {
							break
						}
					}
				}
				return nil
			})(cmd, args)
		}
	}
	{
		var f clientFlags
		var holder string
		var d, maxWait time.Duration
		cmd := newClientCmd("wait KEY [--claim HOLDER --duration D]", "Block until a lease is released; with --claim, claim it then", cobra.ExactArgs(1), &f)
		cmd.Flags().StringVar(&holder, "claim", "", "claim the lease for HOLDER once it is released")
		cmd.Flags().DurationVar(&d, "duration", 0, "lease duration for --claim")
		cmd.Flags().DurationVar(&maxWait, "max-wait", 0, "give up after this long (deadline_exceeded, exit 7; 0: wait forever)")
		cmd.MarkFlagsRequiredTogether("claim", "duration")
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return run(&f, func(ctx context.Context, c *client.Client, p *printer) error {
				k, err := lease.ParseKey(args[0])
				if err != nil {
					return err
				}
				if maxWait > 0 {
					// A cancel, not a deadline: a deadline would travel
					// with the calls, and the server's copy could end the
					// stream a moment before ours, with an answer that
					// does not say we gave up (see gaveUp).
					var cancel context.CancelCauseFunc
					ctx, cancel = context.WithCancelCause(ctx)
					defer cancel(nil)
					defer time.AfterFunc(maxWait, func() { cancel(errMaxWait) }).Stop()
				}
				return waitRelease(ctx, c, &f, p, k, holder, d)
			})(cmd, args)
		}
	}
}

// errMaxWait is the cause of a wait's context ended by --max-wait.
var errMaxWait = errors.New("--max-wait passed")

// gaveUp reports whether --max-wait ended ctx.
func gaveUp(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errMaxWait) }

// watchErr explains a backend without watch support.
func watchErr(err error) error {
	if errors.Is(err, client.ErrWatchUnsupported) {
		return lease.Errorf(lease.CodeUnknown, "watch is not yet supported by this server")
	}
	return err
}

// waitRelease reads the lease and, while it is held, watches it from just
// after that read until it is revoked or expires, so no release can slip
// between the read and the watch. With holder set it uses the server's
// claim-on-release: the claim is queued in the state machine and granted in
// arrival order when the lease is released (one claimant woken per
// release); against a server without it, it claims after each release and
// goes back to waiting if another claimant got it first.
func waitRelease(ctx context.Context, c *client.Client, f *clientFlags, p *printer, k lease.Key, holder string, d time.Duration) error {
	if holder != "" {
		r, err := c.ClaimOnRelease(ctx, k, holder, d, 0, func(q client.Result) {
			if !p.json {
				fmt.Fprintf(p.stderr, "queued behind %s at position %d\n", q.Holder, q.Position)
			}
		})
		switch {
		case err == nil:
			p.result(r, "holder", holder)
			return nil
		case gaveUp(ctx):
			return giveUpClaim(ctx, c, f, p, k, holder, d)
		case !errors.Is(err, errors.ErrUnsupported):
			return err
		}
	}
	for {
		how, err := waitOnce(ctx, c, f, k)
		if errors.Is(err, lease.ErrCompacted) {
			continue // the watch could not resume (a snapshot, or it fell behind): read again
		}
		if err != nil {
			if gaveUp(ctx) {
				return &lease.Error{Code: lease.CodeDeadlineExceeded, Message: "gave up waiting (--max-wait)", Cause: err}
			}
			return err
		}
		if holder == "" {
			if p.json {
				p.emit(map[string]any{"key": k.String(), "released": true, "event": how})
			} else {
				fmt.Fprintf(p.stdout, "%s released (%s)\n", k, how)
			}
			return nil
		}
		rctx, cancel := f.reqCtx(ctx)
		r, err := c.Claim(rctx, k, holder, d)
		cancel()
		if errors.Is(err, lease.ErrDenied) {
			continue // someone else was first: wait for the next release
		}
		if err != nil {
			return err
		}
		p.result(r, "holder", holder)
		return nil
	}
}

// giveUpClaim ends a `wait --claim` whose --max-wait passed. Its queued
// claim is in the log and can outlive the stream: the server withdraws it
// when the stream ends only if it can still write (not, say, a leader that
// was paused meanwhile), else it is kept for its keep-alive and granted at
// the next release. So deadline_exceeded ("not applied") is said only once
// the claim is withdrawn and the lease was not granted to holder before.
func giveUpClaim(ctx context.Context, c *client.Client, f *clientFlags, p *printer, k lease.Key, holder string, d time.Duration) error {
	ctx = context.WithoutCancel(ctx) // the --max-wait deadline has passed
	unknown := func(err error) error {
		return &lease.Error{Code: lease.CodeUnknown, Message: "gave up waiting (--max-wait), but could not make sure the queued claim was withdrawn: it may still be granted", Cause: err}
	}
	rctx, cancel := f.reqCtx(ctx)
	res, err := c.Bulk(rctx, []lease.Command{{Op: lease.OpCancelQueue, Key: k, Holder: holder}})
	cancel()
	if err == nil && res[0].Err != nil {
		err = res[0].Err
	}
	if err != nil {
		return unknown(err)
	}
	// Withdrawn: no grant can come from it any more, but one may have come
	// before. A linearizable read tells.
	rctx, cancel = f.reqCtx(ctx)
	l, _, err := c.Get(rctx, k)
	cancel()
	if err != nil {
		return unknown(err)
	}
	if l == nil || l.Holder != holder {
		// No cause: the stream's own error says the claim "may still apply",
		// which the withdrawal has just made untrue.
		return &lease.Error{Code: lease.CodeDeadlineExceeded, Message: "gave up waiting (--max-wait); the queued claim was withdrawn"}
	}
	// Granted as the wait gave up: report it, confirmed by an extend as
	// client.ClaimOnRelease does (time left counted from the extend's send).
	sent := time.Now()
	rctx, cancel = f.reqCtx(ctx)
	r, err := c.Extend(rctx, k, holder, d)
	cancel()
	if err != nil {
		return unknown(err)
	}
	r.Outcome = lease.OutcomeGranted
	r.ExpiresIn = max(0, r.ExpiresIn-time.Since(sent))
	p.result(r, "holder", holder)
	return nil
}

// waitOnce returns once k is not held: "absent" if it was not held when read,
// else the kind of the event that released it.
func waitOnce(ctx context.Context, c *client.Client, f *clientFlags, k lease.Key) (string, error) {
	rctx, cancel := f.reqCtx(ctx)
	l, meta, err := c.Get(rctx, k)
	cancel()
	if err != nil {
		return "", err
	}
	if l == nil {
		return "absent", nil
	}
	w, err := c.Watch(ctx, client.WatchOptions{Namespace: k.Namespace, Group: k.Group, Name: k.Name, StartIndex: meta.AppliedIndex + 1})
	if err != nil {
		return "", watchErr(err)
	}
	defer w.Close()
	for {
		evs, err := w.Next()
		if err != nil {
			return "", err
		}
		for _, e := range evs {
			if e.Key == k && (e.Kind == lease.EventRevoked || e.Kind == lease.EventExpired) {
				return e.Kind.String(), nil
			}
		}
	}
}
