package grpcserver

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/fsm"
	"github.com/leasehold/leasehold/lease"
)

type loadedBackend struct {
	Backend
	wait time.Duration
}

func (b loadedBackend) Load() (int, time.Duration) { return 0, b.wait }

type idleBackend struct{}

func (idleBackend) Write(context.Context, []lease.Command) ([]lease.Result, error) { return nil, nil }
func (idleBackend) Read(context.Context, bool, func(*fsm.Machine, time.Duration)) (ReadMeta, error) {
	return ReadMeta{}, nil
}
func (idleBackend) Status() Status { return Status{} }

func TestRenewAfterStretchesUnderLoad(t *testing.T) {
	left := 60 * time.Second
	for _, tc := range []struct {
		b    Backend
		want time.Duration
	}{
		{idleBackend{}, 30 * time.Second}, // no load signal: half
		{loadedBackend{idleBackend{}, 0}, 30 * time.Second},
		{loadedBackend{idleBackend{}, renewLoadWait / 2}, 37500 * time.Millisecond},
		{loadedBackend{idleBackend{}, renewLoadWait}, 45 * time.Second},
		{loadedBackend{idleBackend{}, 10 * renewLoadWait}, 45 * time.Second}, // capped at 3/4
	} {
		s := &Server{b: tc.b}
		if got := s.renewAfter(left); got != tc.want {
			t.Errorf("%T wait %v: renew after %v, want %v", tc.b, tc.b, got, tc.want)
		}
	}
	if got := (&Server{b: idleBackend{}}).renewAfter(0); got != 0 {
		t.Errorf("expired lease: %v", got)
	}
}
