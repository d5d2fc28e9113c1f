//go:build !linux

package faults

import (
	"context"
	"errors"
)

// ProcEnv runs servers as separate processes; process faults (SIGSTOP,
// Pdeathsig) are built for Linux only.
type ProcEnv struct{}

func runProcs(context.Context, string, Kind, Workload) (*Outcome, error) {
	return nil, errors.New("faults: process faults need Linux")
}

// RemoveServerBinary has nothing to remove off Linux.
func RemoveServerBinary() {}
