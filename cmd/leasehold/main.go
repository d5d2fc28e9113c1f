// Command leasehold is the Leasehold server, dev cluster and client; its
// bench subcommand runs the separate leasehold-bench binary.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// rootCmd is the root of the CLI. Subcommands register themselves from their
// own files with rootCmd.AddCommand in an init function.
var rootCmd = &cobra.Command{
	Use:           "leasehold",
	Short:         "Leasehold: a lease and leadership service on Raft",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// exitCoder is implemented by errors that carry a CLI exit code.
type exitCoder interface{ ExitCode() int }

func main() {
	if err := rootCmd.Execute(); err != nil {
		code := 2 // cobra's own errors are usage errors
		if ec, ok := err.(exitCoder); ok {
			code = ec.ExitCode()
		} else {
			fmt.Fprintln(os.Stderr, "leasehold:", err)
		}
		os.Exit(code)
	}
}
