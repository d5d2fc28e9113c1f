package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/settings"
	"github.com/leasehold/leasehold/lease"
)

// duration is a time.Duration written as "250ms" in the config file.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string like \"250ms\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// serverConfig is `leasehold server`'s configuration: the JSON config file
// (--config), then flags, then environment variables for secrets, each
// overriding the one before. Field names are the flags' names with '_' for
// '-'.
type serverConfig struct {
	ID         string `json:"id"`
	DataDir    string `json:"data_dir"`
	ClientAddr string `json:"client_addr"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	Bootstrap  string `json:"bootstrap"`
	Join       string `json:"join"`
	JoinAs     string `json:"join_as"` // voter or nonvoter

	TokensFile string `json:"tokens_file"`
	// Tokens are inline "ROLE:TOKEN" entries; prefer tokens_file or the
	// LEASEHOLD_TOKENS environment variable for secrets.
	Tokens []string `json:"tokens"`
	// InsecureAllowOpen lets a server without tokens listen for clients on
	// a non-loopback address, where every caller is admin.
	InsecureAllowOpen bool `json:"insecure_allow_open"`

	TLSCert     string `json:"tls_cert"`
	TLSKey      string `json:"tls_key"`
	TLSClientCA string `json:"tls_client_ca"`
	RaftTLSCert string `json:"raft_tls_cert"`
	RaftTLSKey  string `json:"raft_tls_key"`
	RaftTLSCA   string `json:"raft_tls_ca"`

	Tick              duration `json:"tick"`
	MinDuration       duration `json:"min_duration"`
	MaxDuration       duration `json:"max_duration"`
	SnapshotThreshold uint64   `json:"snapshot_threshold"`
	SnapshotInterval  duration `json:"snapshot_interval"`
	TrailingLogs      uint64   `json:"trailing_logs"`
	RestoreSnapshot   string   `json:"restore_snapshot"`
	LogLevel          string   `json:"log_level"`
	// Watch and wait streams (0: server.DefaultMaxWatchers...).
	MaxWatchers          uint64 `json:"max_watchers"`
	MaxWatchersPerCaller uint64 `json:"max_watchers_per_caller"`
	// Unary calls in progress (0: grpcserver.DefaultMaxCalls).
	MaxCalls uint64 `json:"max_calls"`
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		ClientAddr: "127.0.0.1:7101", RaftAddr: "127.0.0.1:7201", HTTPAddr: "127.0.0.1:7301",
		JoinAs: "voter", Tick: duration(settings.DefaultTickInterval),
		MinDuration: duration(lease.DefaultLimits.MinDuration), MaxDuration: duration(lease.DefaultLimits.MaxDuration),
		SnapshotThreshold: 4096, SnapshotInterval: duration(2 * time.Minute), TrailingLogs: 2048,
		LogLevel: "info",
	}
}

// addServerFlags declares the flags; their defaults are shown in --help but
// only flags given on the command line override the config file.
func addServerFlags(fs *pflag.FlagSet) {
	d := defaultServerConfig()
	fs.String("config", "", "JSON config file (flags override it; see deploy/leasehold.json)")
	fs.String("id", "", "server ID, unique in the cluster (required)")
	fs.String("data-dir", "", "data directory (required)")
	fs.String("client-addr", d.ClientAddr, "gRPC API address")
	fs.String("raft-addr", d.RaftAddr, "Raft address (must be reachable by the other servers)")
	fs.String("http-addr", d.HTTPAddr, "HTTP address: health, metrics, status page")
	fs.String("bootstrap", "", "bootstrap a new cluster: ID=RAFTADDR,ID=RAFTADDR,... (must include this server)")
	fs.String("join", "", "join a running cluster through this server's client address (ignored once this server is a member)")
	fs.String("join-as", d.JoinAs, "join as voter or nonvoter")
	fs.String("tokens-file", "", "file of bearer tokens, one \"ROLE TOKEN\" per line (env LEASEHOLD_TOKENS_FILE); without tokens the API is open, which only a loopback client-addr (or --insecure-allow-open) allows")
	fs.Bool("insecure-allow-open", false, "INSECURE: allow serving without tokens on a non-loopback client address (every caller is admin)")
	fs.String("tls-cert", "", "serve the API over TLS with this certificate (PEM)")
	fs.String("tls-key", "", "private key of --tls-cert (PEM)")
	fs.String("tls-client-ca", "", "require API client certificates signed by this CA (PEM)")
	fs.String("raft-tls-cert", "", "mutual TLS between servers: this server's certificate (PEM)")
	fs.String("raft-tls-key", "", "private key of --raft-tls-cert (PEM)")
	fs.String("raft-tls-ca", "", "CA that signed every server's --raft-tls-cert (PEM)")
	fs.Duration("tick", time.Duration(d.Tick), "how often an idle leader advances replicated time (an initial setting: see --max-duration)")
	fs.Duration("min-duration", time.Duration(d.MinDuration), "shortest lease (an initial setting: see --max-duration)")
	fs.Duration("max-duration", time.Duration(d.MaxDuration), "longest lease. An initial setting: the first leader of a new cluster writes its own to the log; after that the replicated settings apply (leasehold settings set) and a server whose flag differs only warns")
	fs.Uint64("snapshot-threshold", d.SnapshotThreshold, "snapshot after this many new log entries")
	fs.Duration("snapshot-interval", time.Duration(d.SnapshotInterval), "how often to check whether to snapshot")
	fs.Uint64("trailing-logs", d.TrailingLogs, "log entries kept after a snapshot")
	fs.String("restore-snapshot", "", "seed a NEW single-server cluster (with --bootstrap) from a file saved by `leasehold snapshot save`")
	fs.String("log-level", d.LogLevel, "log level: debug, info, warn, error")
	fs.Uint64("max-watchers", grpcserver.DefaultMaxWatchers, "most Watch and WaitUntilReleased streams open on this server")
	fs.Uint64("max-watchers-per-caller", grpcserver.DefaultMaxWatchersPerCaller, "most such streams of one caller (bearer token and host) on this server")
	fs.Uint64("max-calls", grpcserver.DefaultMaxCalls, "most unary lease calls in progress on this server; more are refused with overloaded and a retry-after before they are read (Status and admin calls are not counted)")
}

// set assigns one setting by its flag name from text.
func (c *serverConfig) set(name, v string) error {
	str := map[string]*string{
		"id": &c.ID, "data-dir": &c.DataDir, "client-addr": &c.ClientAddr, "raft-addr": &c.RaftAddr,
		"http-addr": &c.HTTPAddr, "bootstrap": &c.Bootstrap, "join": &c.Join, "join-as": &c.JoinAs,
		"tokens-file": &c.TokensFile, "tls-cert": &c.TLSCert, "tls-key": &c.TLSKey, "tls-client-ca": &c.TLSClientCA,
		"raft-tls-cert": &c.RaftTLSCert, "raft-tls-key": &c.RaftTLSKey, "raft-tls-ca": &c.RaftTLSCA,
		"restore-snapshot": &c.RestoreSnapshot, "log-level": &c.LogLevel,
	}
	dur := map[string]*duration{"tick": &c.Tick, "min-duration": &c.MinDuration, "max-duration": &c.MaxDuration, "snapshot-interval": &c.SnapshotInterval}
	num := map[string]*uint64{"snapshot-threshold": &c.SnapshotThreshold, "trailing-logs": &c.TrailingLogs,
		"max-watchers": &c.MaxWatchers, "max-watchers-per-caller": &c.MaxWatchersPerCaller, "max-calls": &c.MaxCalls}
	flag := map[string]*bool{"insecure-allow-open": &c.InsecureAllowOpen}
	if p, ok := flag[name]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		*p = b
		return nil
	}
	if p, ok := str[name]; ok {
		*p = v
		return nil
	}
	if p, ok := dur[name]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		*p = duration(d)
		return nil
	}
	if p, ok := num[name]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		*p = n
		return nil
	}
	return fmt.Errorf("unknown setting %q", name)
}

// resolveServerConfig builds the configuration: defaults, then the config
// file, then the flags given on the command line, then the environment
// (LEASEHOLD_TOKENS_FILE, LEASEHOLD_TOKENS="ROLE:TOKEN,...").
func resolveServerConfig(fs *pflag.FlagSet, getenv func(string) string) (serverConfig, error) {
	c := defaultServerConfig()
	if path, _ := fs.GetString("config"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if f.Name != "config" && err == nil {
			err = c.set(f.Name, f.Value.String())
		}
	})
	if err != nil {
		return c, err
	}
	if v := getenv("LEASEHOLD_TOKENS_FILE"); v != "" {
		c.TokensFile = v
	}
	if v := getenv("LEASEHOLD_TOKENS"); v != "" {
		c.Tokens = strings.Split(v, ",")
	}
	return c, c.validate()
}

// validate reports the first problem, naming the setting.
func (c serverConfig) validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", name, fmt.Sprintf(format, args...))
	}
	if c.ID == "" {
		return bad("id", "required")
	}
	if c.DataDir == "" {
		return bad("data_dir", "required")
	}
	for name, a := range map[string]string{"client_addr": c.ClientAddr, "raft_addr": c.RaftAddr, "http_addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad(name, "%q is not HOST:PORT", a)
		}
	}
	if h, _, _ := net.SplitHostPort(c.RaftAddr); h == "" || h == "0.0.0.0" || h == "::" {
		return bad("raft_addr", "%q must be an address the other servers can reach, not a wildcard", c.RaftAddr)
	}
	if c.Bootstrap != "" && c.Join != "" {
		return bad("join", "use either bootstrap (a new cluster) or join (a running one)")
	}
	if c.JoinAs != "voter" && c.JoinAs != "nonvoter" {
		return bad("join_as", "%q is not voter or nonvoter", c.JoinAs)
	}
	if c.RestoreSnapshot != "" && c.Bootstrap == "" {
		return bad("restore_snapshot", "needs bootstrap: restore seeds a new cluster")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("tls_cert", "tls_cert and tls_key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return bad("tls_client_ca", "needs tls_cert and tls_key")
	}
	if n := btoi(c.RaftTLSCert != "") + btoi(c.RaftTLSKey != "") + btoi(c.RaftTLSCA != ""); n != 0 && n != 3 {
		return bad("raft_tls_cert", "raft_tls_cert, raft_tls_key and raft_tls_ca go together")
	}
	if c.Tick < duration(10*time.Millisecond) {
		return bad("tick", "%v is below 10ms", time.Duration(c.Tick))
	}
	if lim := (lease.Limits{MinDuration: time.Duration(c.MinDuration), MaxDuration: time.Duration(c.MaxDuration)}); lim.MinDuration <= 0 || lim.MaxDuration < lim.MinDuration {
		return bad("max_duration", "need 0 < min_duration <= max_duration, have %v and %v", lim.MinDuration, lim.MaxDuration)
	}
	if c.SnapshotThreshold == 0 {
		return bad("snapshot_threshold", "must be positive")
	}
	if c.SnapshotInterval < duration(time.Second) {
		return bad("snapshot_interval", "%v is below 1s", time.Duration(c.SnapshotInterval))
	}
	for _, t := range c.Tokens {
		if role, tok, ok := strings.Cut(t, ":"); !ok || tok == "" || (role != "agent" && role != "admin") {
			return bad("tokens", "an entry is not ROLE:TOKEN with role agent or admin")
		}
	}
	return nil
}

// exposure decides whether a server may serve clients as configured: with
// no tokens every caller is admin, which only a loopback address (or the
// explicit insecure_allow_open) may allow. Bearer tokens sent over plain TCP
// to a non-loopback address can be read on the network: that is allowed
// (a private network or a TLS-terminating proxy may be intended) but
// warned about.
func exposure(clientAddr string, tokens int, tls, allowOpen bool) (warning string, err error) {
	if isLoopback(clientAddr) {
		return "", nil
	}
	switch {
	case tokens == 0 && !allowOpen:
		return "", fmt.Errorf("client_addr %s is not a loopback address and no tokens are configured: every caller would be admin. "+
			"Configure tokens (tokens_file, LEASEHOLD_TOKENS), or pass --insecure-allow-open (insecure_allow_open) if an open server is really intended", clientAddr)
	case tokens == 0:
		return "INSECURE: serving with NO AUTHENTICATION on a non-loopback address (--insecure-allow-open): every caller is admin", nil
	case !tls:
		return "bearer tokens are accepted over plain TCP on a non-loopback address: anyone on the network path can read them; configure tls_cert and tls_key", nil
	}
	return "", nil
}

// isLoopback reports whether a HOST:PORT listens on loopback only. A
// wildcard, an empty host or a name other than localhost counts as exposed.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
