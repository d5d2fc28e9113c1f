//go:build !linux

package bench

import "os/exec"

// setChildAttrs: outside Linux there is no parent-death signal; the child
// still stops when its stdin closes (the parent exited).
func setChildAttrs(cmd *exec.Cmd) {}
