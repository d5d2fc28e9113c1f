package main

import (
	"runtime/debug"
	"testing"
)

func TestServerGCDefault(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := applyGCDefault(getenv); got != serverGCPercent {
		t.Fatalf("default: %d", got)
	}
	if now := debug.SetGCPercent(100); now != serverGCPercent {
		t.Fatalf("GC percent in force: %d, want %d", now, serverGCPercent)
	}

	// The operator's GOGC (applied by the runtime at start) is left alone.
	env["GOGC"] = "200"
	debug.SetGCPercent(200)
	if got := applyGCDefault(getenv); got != 200 {
		t.Fatalf("with GOGC=200: %d", got)
	}
	if now := debug.SetGCPercent(100); now != 200 {
		t.Fatalf("GC percent in force: %d, want 200", now)
	}
}
