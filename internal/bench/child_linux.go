package bench

import (
	"os/exec"
	"syscall"
)

// setChildAttrs has the kernel kill the child when the harness dies, however
// it dies (a failed test, kill -9), so no cluster outlives it.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
