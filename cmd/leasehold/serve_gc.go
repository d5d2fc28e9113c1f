package main

import "runtime/debug"

// serverGCPercent is the server's default GOGC. With Go's default of 100 the
// heap grows to twice the live heap between collections, and that headroom,
// not the leases themselves, was most of a running server's RSS (1M held
// leases: 467 B per lease against a live heap of about 200 B; see
// docs/performance.md). 50 keeps it to one and a half times.
const serverGCPercent = 50

// applyGCDefault sets the server's GC target unless the operator chose one
// with GOGC (the Go runtime has already applied that). It returns the
// percent in force.
func applyGCDefault(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		cur := debug.SetGCPercent(100) // SetGCPercent is the only reader
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(serverGCPercent)
	return serverGCPercent
}
