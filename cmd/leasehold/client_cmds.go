package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

const defaultEndpoints = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"

// clientFlags are the flags every client command takes.
type clientFlags struct {
	endpoints, token       string
	timeout                time.Duration
	json                   bool
	tlsCA, tlsCert, tlsKey string
	tlsServerName          string
	tls                    bool
}

func addClientFlags(cmd *cobra.Command, f *clientFlags) {
	fs := cmd.Flags()
	fs.StringVar(&f.endpoints, "endpoints", envOr("LEASEHOLD_ENDPOINTS", defaultEndpoints), "comma-separated server client addresses (env LEASEHOLD_ENDPOINTS)")
	fs.StringVar(&f.token, "token", os.Getenv("LEASEHOLD_TOKEN"), "bearer token (env LEASEHOLD_TOKEN)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "request deadline")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.BoolVar(&f.tls, "tls", false, "connect over TLS (implied by the other --tls-* flags)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA file to verify servers (system roots if empty)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM client certificate (mutual TLS)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM client key (mutual TLS)")
	fs.StringVar(&f.tlsServerName, "tls-server-name", "", "server name to verify instead of the endpoint's host")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (f *clientFlags) newClient() (*client.Client, error) {
	cfg := client.Config{Token: f.token, DefaultTimeout: f.timeout}
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
	}
	if f.tls || f.tlsCA != "" || f.tlsCert != "" || f.tlsKey != "" || f.tlsServerName != "" {
		t, err := client.TLSConfig(f.tlsCA, f.tlsCert, f.tlsKey, f.tlsServerName)
		if err != nil {
			return nil, lease.InvalidArgument("tls", "%v", err)
		}
		cfg.TLS = t
	}
	return client.New(cfg)
}

// run wraps a client command: it makes the printer and client, and prints
// any error in the chosen format with its exit code.
func run(f *clientFlags, fn func(ctx context.Context, c *client.Client, p *printer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		p := newPrinter(f.json)
		p.stdout, p.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
		c, err := f.newClient()
		if err != nil {
			return p.fail(err)
		}
		defer c.Close()
		// Ctrl-C cancels the call in flight, on the server too.
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := fn(ctx, c, p); err != nil {
			return p.fail(err)
		}
		return nil
	}
}

func (f *clientFlags) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.timeout)
}

func newClientCmd(use, short string, args cobra.PositionalArgs, f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	addClientFlags(cmd, f)
	rootCmd.AddCommand(cmd)
	return cmd
}

func init() {
	writeCmd := func(use, short string, op lease.Op) {
		var f clientFlags
		var d time.Duration
		nargs := cobra.ExactArgs(2)
		cmd := newClientCmd(use, short, nargs, &f)
		if op == lease.OpClaim || op == lease.OpExtend {
			cmd.Flags().DurationVar(&d, "duration", 0, "lease duration (required)")
			_ = cmd.MarkFlagRequired("duration")
		}
		holderField := "holder"
		if op == lease.OpPin || op == lease.OpUnpin {
			holderField = "entity"
		}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return run(&f, func(ctx context.Context, c *client.Client, p *printer) error {
				k, err := lease.ParseKey(args[0])
				if err != nil {
					return err
				}
				ctx, cancel := f.reqCtx(ctx)
				defer cancel()
				var r client.Result
				switch op {
				case lease.OpClaim:
					r, err = c.Claim(ctx, k, args[1], d)
				case lease.OpExtend:
					r, err = c.Extend(ctx, k, args[1], d)
				case lease.OpRevoke:
					r, err = c.Revoke(ctx, k, args[1])
				case lease.OpPin:
					r, err = c.Pin(ctx, k, args[1])
				case lease.OpUnpin:
					r, err = c.Unpin(ctx, k, args[1])
				}
				if err != nil {
					return err
				}
				p.result(r, holderField, args[1])
				return nil
			})(cmd, args)
		}
	}
	writeCmd("claim KEY HOLDER --duration D", "Claim a lease (or extend it, if HOLDER already holds it)", lease.OpClaim)
	writeCmd("extend KEY HOLDER --duration D", "Extend a lease HOLDER holds; never shortens it", lease.OpExtend)
	writeCmd("revoke KEY HOLDER", "Release a lease HOLDER holds", lease.OpRevoke)
	writeCmd("pin KEY ENTITY", "Pin a lease so it does not expire until ENTITY unpins it (admin)", lease.OpPin)
	writeCmd("unpin KEY ENTITY", "Remove ENTITY's pin (admin)", lease.OpUnpin)
	initReadCmds()
}

func initReadCmds() {
	{
		var f clientFlags
		var stale bool
		cmd := newClientCmd("get KEY", "Read one lease", cobra.ExactArgs(1), &f)
		cmd.Flags().BoolVar(&stale, "stale", false, "let any server answer from its applied state")
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return run(&f, func(ctx context.Context, c *client.Client, p *printer) error {
				k, err := lease.ParseKey(args[0])
				if err != nil {
					return err
				}
				ctx, cancel := f.reqCtx(ctx)
				defer cancel()
				l, meta, err := c.Get(ctx, k, readOpts(stale)...)
				if err != nil {
					return err
				}
				switch {
				case p.json && l == nil:
					p.emit(metaJSON(map[string]any{"key": k.String(), "found": false}, meta))
				case p.json:
					out := metaJSON(leaseJSON(l), meta)
					out["found"] = true
					p.emit(out)
				case l == nil:
					fmt.Fprintf(p.stdout, "%s is not held\n", k)
				default:
					fmt.Fprintln(p.stdout, leaseLine(l))
				}
				return nil
			})(cmd, args)
		}
	}
	{
		var f clientFlags
		var stale bool
		var pageSize int
		cmd := newClientCmd("list [NAMESPACE[/GROUP]]", "List held leases", cobra.MaximumNArgs(1), &f)
		cmd.Flags().BoolVar(&stale, "stale", false, "let any server answer from its applied state")
		cmd.Flags().IntVar(&pageSize, "page-size", 0, "leases per request (server default if 0)")
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			return run(&f, func(ctx context.Context, c *client.Client, p *printer) error {
				o := client.ListOptions{Stale: stale, PageSize: pageSize}
				if len(args) == 1 {
					var extra string
					o.Namespace, o.Group, _ = strings.Cut(args[0], "/")
					if strings.Contains(o.Group, "/") {
						o.Group, extra, _ = strings.Cut(o.Group, "/")
						return lease.InvalidArgument("prefix", "list takes NAMESPACE[/GROUP], not a key (%q left over)", extra)
					}
				}
				ctx, cancel := f.reqCtx(ctx)
				defer cancel()
				ls, meta, err := c.ListAll(ctx, o)
				if err != nil {
					return err
				}
				if p.json {
					items := make([]map[string]any, len(ls))
					for i := range ls {
						items[i] = leaseJSON(&ls[i])
					}
					p.emit(metaJSON(map[string]any{"leases": items}, meta))
					return nil
				}
				for i := range ls {
					fmt.Fprintln(p.stdout, leaseLine(&ls[i]))
				}
				if len(ls) == 0 {
					fmt.Fprintln(p.stdout, "no leases")
				}
				return nil
			})(cmd, args)
		}
	}
	initWatchCmds()
	initStatusCmd()
}

func readOpts(stale bool) []client.ReadOption {
	if stale {
		return []client.ReadOption{client.Stale()}
	}
	return nil
}

func initStatusCmd() {
	var f clientFlags
	cmd := newClientCmd("status", "Show the cluster: members, leader, term, indexes, queue depth", cobra.NoArgs, &f)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return run(&f, func(ctx context.Context, c *client.Client, p *printer) error {
			ctx, cancel := f.reqCtx(ctx)
			defer cancel()
			all := c.StatusAll(ctx)
			var best *client.Status // the leader's view, else any
			var firstErr error
			for _, es := range all {
				if es.Status != nil && (best == nil || es.Status.State == "leader") {
					best = es.Status
				}
				if es.Err != nil && firstErr == nil {
					firstErr = es.Err
				}
			}
			if best == nil {
				return firstErr
			}
			if p.json {
				servers := make([]map[string]any, len(all))
				for i, es := range all {
					s := map[string]any{"endpoint": es.Endpoint}
					if st := es.Status; st != nil {
						s["id"], s["state"], s["term"], s["leader_id"] = st.ID, st.State, st.Term, st.LeaderID
						s["commit_index"], s["applied_index"], s["last_index"] = st.CommitIndex, st.AppliedIndex, st.LastIndex
						s["queue_depth"], s["leases"], s["now_ms"] = st.QueueDepth, st.Leases, ms(st.Now)
					} else {
						s["error"] = es.Err.Error()
					}
					servers[i] = s
				}
				members := make([]map[string]any, len(best.Members))
				for i, m := range best.Members {
					members[i] = map[string]any{"id": m.ID, "raft_addr": m.RaftAddr, "client_addr": m.ClientAddr,
						"http_addr": m.HTTPAddr, "voter": m.Voter, "leader": m.Leader}
				}
				p.emit(map[string]any{"leader_id": best.LeaderID, "leader_addr": best.LeaderAddr, "term": best.Term,
					"applied_index": best.AppliedIndex, "queue_depth": best.QueueDepth, "members": members, "servers": servers})
				return nil
			}
			leader := best.LeaderID
			if leader == "" {
				leader = "(none)"
			}
			fmt.Fprintf(p.stdout, "leader: %s %s  term: %d\n\n", leader, best.LeaderAddr, best.Term)
			tw := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENDPOINT\tID\tSTATE\tTERM\tCOMMIT\tAPPLIED\tQUEUE\tLEASES")
			for _, es := range all {
				if st := es.Status; st != nil {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", es.Endpoint, st.ID, st.State, st.Term, st.CommitIndex, st.AppliedIndex, st.QueueDepth, st.Leases)
				} else {
					fmt.Fprintf(tw, "%s\t-\tunreachable: %v\n", es.Endpoint, es.Err)
				}
			}
			tw.Flush()
			if len(best.Members) > 0 {
				fmt.Fprintln(p.stdout, "\nmembers:")
				tw = tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tRAFT\tCLIENT\tHTTP\tVOTER\tLEADER")
				for _, m := range best.Members {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\n", m.ID, m.RaftAddr, m.ClientAddr, m.HTTPAddr, m.Voter, m.Leader)
				}
				tw.Flush()
			}
			return nil
		})(cmd, args)
	}
}
