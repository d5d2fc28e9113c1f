package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// The benchmark lives in its own binary, cmd/leasehold-bench, because it
// embeds an etcd cluster and a plotting library that a production server
// must not ship. `leasehold bench ...` runs that binary, found beside this
// one or on PATH, with the same arguments; without it, it says how to get it.

// benchExit carries the benchmark's exit code through.
type benchExit struct{ code int }

func (e benchExit) Error() string { return fmt.Sprintf("leasehold-bench exited with %d", e.code) }
func (e benchExit) ExitCode() int { return e.code }

const benchBinary = "leasehold-bench"

// findBench returns the path of leasehold-bench: beside this executable
// first, then on PATH.
func findBench() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), benchBinary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(benchBinary)
}

func init() {
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Run the benchmark (the leasehold-bench binary, with the same flags)",
		Long: `Runs leasehold-bench (found beside this binary or on PATH) with the same
arguments. The benchmark is a separate binary so that the server links no peer
database; build it with  go build ./cmd/leasehold-bench  or run it with
go run ./cmd/leasehold-bench --scenario ... from a checkout.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findBench()
			if err != nil {
				fmt.Fprintln(os.Stderr, "leasehold: the benchmark is a separate binary: build it with `go build ./cmd/leasehold-bench` (beside this one or on PATH), or run `go run ./cmd/leasehold-bench ...` from a checkout")
				return benchExit{code: 2}
			}
			c := exec.Command(path, args...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			// A ctrl-c reaches the benchmark too (same process group); it
			// stops in order, so this process waits for it. SIGTERM is passed on.
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "leasehold: running", path+":", err)
				return benchExit{code: 1}
			}
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case s := <-sigs:
						if s == syscall.SIGTERM {
							c.Process.Signal(s)
						}
					case <-done:
						return
					}
				}
			}()
			err = c.Wait()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return benchExit{code: ee.ExitCode()}
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "leasehold: running", path+":", err)
				return benchExit{code: 1}
			}
			return nil
		},
	}
	rootCmd.AddCommand(cmd)
}
