package blackbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// exitOf is the contract's exit code for each JSON error code
// (/work/shared/CLI.md, "Exit codes"; canceled is an unknown outcome).
var exitOf = map[string]int{
	"denied": 3, "not_held": 4, "invalid_argument": 2, "not_leader": 5,
	"unavailable": 5, "overloaded": 6, "deadline_exceeded": 7, "unknown": 1,
	"unauthenticated": 8, "permission_denied": 8, "canceled": 1,
}

// cliError is the JSON error object of a failed command.
type cliError struct {
	Code        string `json:"code"`
	Message     string `json:"message"`
	Retryable   bool   `json:"retryable"`
	Holder      string `json:"holder"`
	ExpiresInMs int64  `json:"expires_in_ms"`
}

// writeOut is the --json answer of claim, extend, revoke and wait --claim.
type writeOut struct {
	Key         string    `json:"key"`
	Holder      string    `json:"holder"`
	Result      string    `json:"result"`
	Token       uint64    `json:"token"`
	ExpiresInMs int64     `json:"expires_in_ms"`
	Error       *cliError `json:"error"`
}

type leaseOut struct {
	Key         string `json:"key"`
	Holder      string `json:"holder"`
	Token       uint64 `json:"token"`
	ExpiresInMs int64  `json:"expires_in_ms"`
	Pinned      bool   `json:"pinned"`
	StartNs     int64  `json:"start_ns"`
	ExpiryNs    int64  `json:"expiry_ns"`
}

// getOut is `get --json`.
type getOut struct {
	Found        bool   `json:"found"`
	Holder       string `json:"holder"`
	Token        uint64 `json:"token"`
	AppliedIndex uint64 `json:"applied_index"`
}

// listOut is `list --json`.
type listOut struct {
	Leases       []leaseOut `json:"leases"`
	AppliedIndex uint64     `json:"applied_index"`
	ServerID     string     `json:"server_id"`
	Error        *cliError  `json:"error"`
}

// statusOut is `status --json`.
type statusOut struct {
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	Servers      []struct {
		ID           string `json:"id"`
		State        string `json:"state"`
		AppliedIndex uint64 `json:"applied_index"`
		Error        string `json:"error"`
	} `json:"servers"`
	Error *cliError `json:"error"`
}

// call is one CLI run as the caller saw it.
type call struct {
	args       []string
	start, end time.Time // local monotonic clock around the run
	lineAt     time.Time // when the first stdout line was read
	exit       int       // -1: killed by us (hung)
	stdout     string
	stderr     string
}

func (c *call) String() string {
	return fmt.Sprintf("leasehold %s -> exit %d %s%s", strings.Join(c.args, " "), c.exit,
		strings.TrimSpace(c.stdout), firstLine(c.stderr))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	l, _, _ := strings.Cut(s, "\n")
	return " (stderr: " + l + ")"
}

// runCLI runs the binary with args, killing it after limit.
func runCLI(bin string, limit time.Duration, args ...string) *call {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	c := &call{args: args}
	if err != nil {
		c.exit, c.stderr = -2, err.Error()
		return c
	}
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		c.exit, c.stderr = -2, err.Error()
		return c
	}
	// The time a line is read bounds from above when the command knew its
	// answer (wait --claim reports time left from its return).
	var stdout bytes.Buffer
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if line != "" && c.lineAt.IsZero() {
			c.lineAt = time.Now()
		}
		stdout.WriteString(line)
		if err != nil {
			break
		}
	}
	err = cmd.Wait()
	c.end = time.Now()
	c.stdout, c.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		c.exit = -1
	case err == nil:
		c.exit = 0
	case errors.As(err, &ee):
		c.exit = ee.ExitCode()
	default:
		c.exit = -2
	}
	return c
}

// contractErr checks a --json command's exit code against its output: 0
// with no error object, else an error object whose code maps to the exit
// code. It returns the error code ("" on success) or a description of the
// breach.
func contractErr(c *call) (code string, breach string) {
	if c.exit == -1 {
		return "", "hung: killed after its time limit"
	}
	if c.exit < 0 || c.exit > 8 {
		return "", fmt.Sprintf("exit code %d is not one of the contract's (0-8)", c.exit)
	}
	var v struct {
		Error *cliError `json:"error"`
	}
	line := strings.TrimSpace(c.stdout)
	if strings.Count(line, "\n") > 0 || json.Unmarshal([]byte(line), &v) != nil {
		return "", "stdout is not one JSON object"
	}
	switch {
	case c.exit == 0 && v.Error != nil:
		return "", "exit 0 with an error object"
	case c.exit == 0:
		return "", ""
	case v.Error == nil:
		return "", fmt.Sprintf("exit %d without an error object", c.exit)
	}
	want, ok := exitOf[v.Error.Code]
	if !ok {
		return v.Error.Code, fmt.Sprintf("error code %q is not one of the contract's", v.Error.Code)
	}
	if want != c.exit {
		return v.Error.Code, fmt.Sprintf("error code %q exits %d, the contract says %d", v.Error.Code, c.exit, want)
	}
	return v.Error.Code, ""
}
