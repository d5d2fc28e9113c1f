package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// adminSub adds a client subcommand under parent.
func adminSub(parent *cobra.Command, use, short string, args cobra.PositionalArgs, f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	addClientFlags(cmd, f)
	parent.AddCommand(cmd)
	return cmd
}

func printSettings(p *printer, s *client.Settings) {
	if p.json {
		m := map[string]string{}
		for _, kv := range s.Settings {
			m[kv.Key] = kv.Value
		}
		p.emit(map[string]any{"settings": m, "replicated": s.Replicated, "version": s.Version})
		return
	}
	w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range s.Settings {
		fmt.Fprintf(w, "%s\t%s\n", kv.Key, kv.Value)
	}
	w.Flush()
	fmt.Fprintf(p.stdout, "(settings version %d)\n", s.Version)
	if !s.Replicated {
		fmt.Fprintln(p.stdout, "(never changed: the built-in defaults)")
	}
}

func printMembers(p *printer, ms []client.Member) {
	if p.json {
		var out []map[string]any
		for _, m := range ms {
			out = append(out, map[string]any{"id": m.ID, "raft_addr": m.RaftAddr, "client_addr": m.ClientAddr,
				"http_addr": m.HTTPAddr, "voter": m.Voter, "leader": m.Leader})
		}
		p.emit(map[string]any{"members": out})
		return
	}
	w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROLE\tVOTER\tRAFT\tCLIENT\tHTTP")
	for _, m := range ms {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\n", m.ID, role, m.Voter, m.RaftAddr, m.ClientAddr, m.HTTPAddr)
	}
	w.Flush()
}

func init() {
	settingsCmd := &cobra.Command{Use: "settings", Short: "Read or change the live cluster settings (admin)"}
	rootCmd.AddCommand(settingsCmd)
	var gf clientFlags
	get := adminSub(settingsCmd, "get", "Show every cluster setting", cobra.NoArgs, &gf)
	get.RunE = run(&gf, func(ctx context.Context, c *client.Client, p *printer) error {
		ctx, cancel := gf.reqCtx(ctx)
		defer cancel()
		s, err := c.GetSettings(ctx)
		if err != nil {
			return err
		}
		printSettings(p, s)
		return nil
	})
	var sf clientFlags
	set := adminSub(settingsCmd, "set KEY=VALUE...", "Change cluster settings; every server applies them without restart", cobra.MinimumNArgs(1), &sf)
	ifVersion := set.Flags().Int64("if-version", -1, "change the settings only if they are still at this version (from `settings get`); refused if someone changed them since")
	set.RunE = func(cmd *cobra.Command, args []string) error {
		return run(&sf, func(ctx context.Context, c *client.Client, p *printer) error {
			values := map[string]string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return lease.InvalidArgument("settings", "%q is not KEY=VALUE", a)
				}
				values[k] = v
			}
			ctx, cancel := sf.reqCtx(ctx)
			defer cancel()
			var s *client.Settings
			var err error
			if *ifVersion >= 0 {
				s, err = c.SetSettingsFrom(ctx, uint64(*ifVersion), values)
			} else {
				s, err = c.SetSettings(ctx, values)
			}
			if err != nil {
				return err
			}
			printSettings(p, s)
			return nil
		})(cmd, args)
	}

	memberCmd := &cobra.Command{Use: "member", Short: "List, add and remove cluster members (admin)"}
	rootCmd.AddCommand(memberCmd)
	var lf clientFlags
	adminSub(memberCmd, "list", "List the cluster's servers", cobra.NoArgs, &lf).RunE = run(&lf, func(ctx context.Context, c *client.Client, p *printer) error {
		ctx, cancel := lf.reqCtx(ctx)
		defer cancel()
		ms, err := c.ListMembers(ctx)
		if err != nil {
			return err
		}
		printMembers(p, ms)
		return nil
	})
	var af clientFlags
	var spec client.MemberSpec
	add := adminSub(memberCmd, "add ID RAFTADDR", "Add a server (it must be running with an empty data directory)", cobra.ExactArgs(2), &af)
	add.Flags().StringVar(&spec.ClientAddr, "client-addr", "", "the server's client address, for leader hints")
	add.Flags().StringVar(&spec.HTTPAddr, "http-addr", "", "the server's HTTP address")
	add.Flags().BoolVar(&spec.NonVoter, "nonvoter", false, "add as a non-voter (replicates, does not vote)")
	add.RunE = func(cmd *cobra.Command, args []string) error {
		return run(&af, func(ctx context.Context, c *client.Client, p *printer) error {
			spec.ID, spec.RaftAddr = args[0], args[1]
			ctx, cancel := af.reqCtx(ctx)
			defer cancel()
			ms, err := c.AddMember(ctx, spec)
			if err != nil {
				return err
			}
			printMembers(p, ms)
			return nil
		})(cmd, args)
	}
	var rf clientFlags
	rm := adminSub(memberCmd, "remove ID", "Remove a server from the cluster", cobra.ExactArgs(1), &rf)
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		return run(&rf, func(ctx context.Context, c *client.Client, p *printer) error {
			ctx, cancel := rf.reqCtx(ctx)
			defer cancel()
			ms, err := c.RemoveMember(ctx, args[0])
			if err != nil {
				return err
			}
			printMembers(p, ms)
			return nil
		})(cmd, args)
	}

	snapCmd := &cobra.Command{Use: "snapshot", Short: "Save the cluster state for disaster recovery (admin)"}
	rootCmd.AddCommand(snapCmd)
	var nf clientFlags
	save := adminSub(snapCmd, "save FILE", "Save the leader's current state to FILE", cobra.ExactArgs(1), &nf)
	save.RunE = func(cmd *cobra.Command, args []string) error {
		return run(&nf, func(ctx context.Context, c *client.Client, p *printer) error {
			ctx, cancel := nf.reqCtx(ctx)
			defer cancel()
			data, index, err := c.SaveSnapshot(ctx)
			if err != nil {
				return err
			}
			tmp := args[0] + ".tmp"
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp, args[0]); err != nil {
				return err
			}
			if p.json {
				p.emit(map[string]any{"file": args[0], "bytes": len(data), "index": index})
			} else {
				fmt.Fprintf(p.stdout, "saved %d bytes (applied index %d) to %s\n", len(data), index, args[0])
			}
			return nil
		})(cmd, args)
	}
}
