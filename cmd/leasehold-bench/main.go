// Command leasehold-bench is the Leasehold benchmark: the Juju lease harness
// (steady, herd, burst), the per-operation ceilings and the open-loop
// saturation sweep, run against Leasehold and its peers (an embedded etcd
// cluster). It is a binary of its own so that the server binary,
// cmd/leasehold, links no peer database and no plotting library;
// `leasehold bench ...` runs this binary when it is installed beside it or
// on PATH.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "leasehold-bench",
	Short:         "Benchmark Leasehold against its peers",
	SilenceUsage:  true,
	SilenceErrors: true,
}

type exitCoder interface{ ExitCode() int }

func main() {
	// `leasehold-bench --scenario ...` is `leasehold bench --scenario ...`:
	// with no subcommand named, run bench.
	args := os.Args[1:]
	if len(args) == 0 || (args[0] != "bench-server" && args[0] != "help" && args[0] != "completion" && args[0] != "bench") {
		args = append([]string{"bench"}, args...)
	}
	rootCmd.SetArgs(args)
	if err := rootCmd.Execute(); err != nil {
		code := 2
		if ec, ok := err.(exitCoder); ok {
			code = ec.ExitCode()
		} else {
			fmt.Fprintln(os.Stderr, "leasehold-bench:", err)
		}
		os.Exit(code)
	}
}
