package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime/stime in /proc/PID/stat (100 on
// every Linux architecture Go supports).
const clkTck = 100

// procCPU is utime+stime of process pid (all its threads), from
// /proc/PID/stat; 0 where /proc is missing.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces; fields after ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

// selfCPU is this process's user+system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is a process's CPU time so far and its peak resident set.
type usage struct {
	cpu    time.Duration
	maxRSS uint64 // bytes
}

// selfUsage is this process's getrusage: user+system time and peak RSS
// (ru_maxrss, kilobytes on Linux).
func selfUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), maxRSS: uint64(ru.Maxrss) * 1024}
}

// serverCPU is the CPU time so far of t's server process (the child that
// runs its 3 servers), from /proc; ok is false when the servers run in this
// process, where their CPU cannot be told from the generator's.
func serverCPU(t Target) (cpu time.Duration, ok bool) {
	pid, inProc := serverPID(t)
	if inProc {
		return 0, false
	}
	return procCPU(pid), true
}

// procRSS is the current resident set size (VmRSS) of pid.
func procRSS(pid int) uint64 { return procStatusBytes(pid, "VmRSS:") }
