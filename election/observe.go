package election

import (
	"context"
	"errors"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Leader is the office's holder as seen at Index: ID "" when no one leads.
type Leader struct {
	ID    string
	Token uint64
	Index uint64 // the log index this view is current to
}

// Leader reads the current leader (a linearizable read).
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	l, meta, err := e.cfg.Client.Get(ctx, e.cfg.Key)
	if err != nil {
		return Leader{}, err
	}
	cur := Leader{Index: meta.AppliedIndex}
	if l != nil {
		cur.ID, cur.Token = l.Holder, l.Token
	}
	return cur, nil
}

// Observe sends the leader each time it changes, starting with the current
// one, until ctx is done; then it closes the channel. A slow reader misses
// intermediate leaders, never the latest.
func (e *Election) Observe(ctx context.Context) <-chan Leader {
	out := make(chan Leader, 1)
	go func() {
		defer close(out)
		var last *Leader
		e.follow(ctx, func(cur Leader) bool {
			if last != nil && last.ID == cur.ID && last.Token == cur.Token {
				return true
			}
			last = &cur
			select {
			case out <- cur:
			default:
				// Keep only the latest: replace what the reader has not taken.
				select {
				case <-out:
				default:
				}
				out <- cur
			}
			return true
		})
	}()
	return out
}

// follow calls fn with the leader, then again after every change, until fn
// returns false or ctx is done. Each round reads the key and watches it
// from the index after the read, so no change between the two is missed;
// a broken or compacted watch starts a new round after cfg.Retry.
func (e *Election) follow(ctx context.Context, fn func(Leader) bool) {
	for ctx.Err() == nil {
		if !e.followOnce(ctx, fn) {
			return
		}
		t := e.cfg.Clock.NewTimer(e.cfg.Retry)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// followOnce runs one read-then-watch round; false means fn asked to stop.
func (e *Election) followOnce(ctx context.Context, fn func(Leader) bool) bool {
	cur, err := e.Leader(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.cfg.Logger.Debug("election: read failed", "key", e.cfg.Key, "err", err)
		}
		return true
	}
	if !fn(cur) {
		return false
	}
	k := e.cfg.Key
	w, err := e.cfg.Client.Watch(ctx, client.WatchOptions{Namespace: k.Namespace, Group: k.Group, Name: k.Name, StartIndex: cur.Index + 1})
	if err != nil {
		return true
	}
	defer w.Close()
	read := cur.Index // events up to here are already in cur; one index can hold a revoke and the next grant
	for {
		evs, err := w.Next()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				e.cfg.Logger.Debug("election: watch ended; reading again", "key", k, "err", err)
			}
			return true
		}
		for _, ev := range evs {
			if ev.Key != k || ev.Index <= read {
				continue
			}
			switch ev.Kind {
			case lease.EventClaimed:
				cur = Leader{ID: ev.Holder, Token: ev.Token, Index: ev.Index}
			case lease.EventRevoked, lease.EventExpired:
				if ev.Token != cur.Token {
					continue // the end of a tenure this view never saw begin
				}
				cur = Leader{Index: ev.Index}
			default:
				continue // extends and pins do not change the leader
			}
			if !fn(cur) {
				return false
			}
		}
	}
}
