package devcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/leasehold/leasehold/internal/backend"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/server"
)

// Options configure a cluster.
type Options struct {
	// Size is the number of servers (default 3).
	Size int
	// Dir holds one data directory per server. Required.
	Dir string
	// Host to bind (default 127.0.0.1).
	Host string
	// BasePort, when set, fixes the ports: server i (1-based) serves clients
	// on BasePort+i, Raft on BasePort+100+i and HTTP on BasePort+200+i.
	// Zero picks free ports.
	BasePort int
	// Raft adjusts each server's Raft configuration (timeouts, hooks).
	Raft func(*replica.Config)
	// Node configures each server's write path (admission or naive).
	Node backend.Options
	// Server configures each server's gRPC API (tokens, TLS).
	Server grpcserver.Options
	Logger *slog.Logger
}

// Member is one server of the cluster.
type Member struct {
	Index      int // 0-based
	ID         string
	Dir        string
	ClientAddr string
	RaftAddr   string
	HTTPAddr   string

	mu  sync.Mutex
	srv *server.Server
}

// Server returns the member's running server (nil while stopped).
func (m *Member) Server() *server.Server { m.mu.Lock(); defer m.mu.Unlock(); return m.srv }

// Raft returns the member's replica (nil while stopped).
func (m *Member) Raft() *replica.Node {
	if s := m.Server(); s != nil {
		return s.Raft
	}
	return nil
}

// Node returns the member's backend (nil while stopped).
func (m *Member) Node() *backend.Node {
	if s := m.Server(); s != nil {
		return s.Node
	}
	return nil
}

// Running reports whether the member is up.
func (m *Member) Running() bool { return m.Server() != nil }

// Cluster is a running in-process cluster.
type Cluster struct {
	opts    Options
	Members []*Member
}

// Start starts every server and bootstraps a new cluster (or recovers one
// from Dir), returning once the servers are listening. Use WaitLeader to wait
// for a leader.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Size == 0 {
		opts.Size = 3
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Dir == "" {
		return nil, errors.New("cluster: Dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{opts: opts}
	for i := 0; i < opts.Size; i++ {
		id := "node" + strconv.Itoa(i+1)
		m := &Member{Index: i, ID: id, Dir: filepath.Join(opts.Dir, id)}
		m.ClientAddr, m.RaftAddr, m.HTTPAddr = c.addr(0, i), c.addr(100, i), c.addr(200, i)
		c.Members = append(c.Members, m)
	}
	// With fixed ports every address is known, so each node bootstraps at
	// start. With free ports the Raft addresses are known only once the
	// transports listen, so the nodes start empty and are bootstrapped after.
	fixed := opts.BasePort != 0
	for _, m := range c.Members {
		if err := c.startMember(m, fixed); err != nil {
			c.Close()
			return nil, err
		}
	}
	if !fixed {
		peers := c.peers()
		for _, m := range c.Members {
			if err := m.Raft().Bootstrap(peers); err != nil && !isAlreadyBootstrapped(err) {
				c.Close()
				return nil, fmt.Errorf("cluster: bootstrap %s: %w", m.ID, err)
			}
		}
	}
	return c, nil
}

func (c *Cluster) addr(offset, i int) string {
	port := 0
	if c.opts.BasePort != 0 {
		port = c.opts.BasePort + offset + i + 1
	}
	return net.JoinHostPort(c.opts.Host, strconv.Itoa(port))
}

func (c *Cluster) peers() []replica.Peer {
	var ps []replica.Peer
	for _, m := range c.Members {
		ps = append(ps, replica.Peer{ID: m.ID, RaftAddr: m.RaftAddr})
	}
	return ps
}

func (c *Cluster) directory() []logentry.Member {
	var ms []logentry.Member
	for _, m := range c.Members {
		if !isPortZero(m.ClientAddr) {
			ms = append(ms, logentry.Member{ID: m.ID, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr})
		}
	}
	return ms
}

func isPortZero(addr string) bool {
	_, p, _ := net.SplitHostPort(addr)
	return p == "0"
}

func isAlreadyBootstrapped(err error) bool {
	return err != nil && err.Error() == "bootstrap only works on new clusters"
}

func (c *Cluster) startMember(m *Member, bootstrap bool) error {
	// Client and HTTP ports are resolved before Raft starts (service.Start
	// listens first), but the directory must hold every member's real
	// address, so free ports are reserved here on first start.
	if err := c.reserve(m); err != nil {
		return err
	}
	cfg := replica.Config{
		ID:         m.ID,
		DataDir:    m.Dir,
		RaftAddr:   m.RaftAddr,
		ClientAddr: m.ClientAddr,
		HTTPAddr:   m.HTTPAddr,
		Logger:     c.opts.Logger,
	}
	if bootstrap {
		cfg.Bootstrap = c.peers()
	}
	if c.opts.Raft != nil {
		c.opts.Raft(&cfg)
	}
	cfg.KnownMembers = c.directory()
	srv, err := server.Start(server.Config{Raft: cfg, Node: c.opts.Node, Server: c.opts.Server, Logger: c.opts.Logger})
	if err != nil {
		return fmt.Errorf("cluster: start %s: %w", m.ID, err)
	}
	m.mu.Lock()
	m.RaftAddr = srv.Raft.RaftAddr()
	m.srv = srv
	m.mu.Unlock()
	return nil
}

// reserve replaces port 0 in m's client and HTTP addresses by free ports.
func (c *Cluster) reserve(m *Member) error {
	for _, addr := range []*string{&m.ClientAddr, &m.HTTPAddr} {
		if !isPortZero(*addr) {
			continue
		}
		l, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		*addr = l.Addr().String()
		l.Close()
	}
	return nil
}

// WaitLeader waits until a running member leads with its clock ready.
func (c *Cluster) WaitLeader(ctx context.Context) (*Member, error) {
	for _, m := range c.Members {
		if r := m.Raft(); r != nil {
			if err := r.WaitLeader(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	for {
		if l := c.Leader(); l != nil {
			return l, nil
		}
		for _, m := range c.Members {
			if r := m.Raft(); r != nil {
				if err := r.WaitLeader(ctx); err != nil {
					return nil, err
				}
			}
		}
	}
}

// Leader returns the running member whose clock is ready, or nil.
func (c *Cluster) Leader() *Member {
	for _, m := range c.Members {
		if r := m.Raft(); r != nil {
			if _, ok := r.Now(); ok {
				return m
			}
		}
	}
	return nil
}

// Stop stops member i (a clean shutdown that hands over leadership).
func (c *Cluster) Stop(i int) error { return c.stop(c.Members[i]) }

func (c *Cluster) stop(m *Member) error {
	m.mu.Lock()
	srv := m.srv
	m.srv = nil
	m.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Restart starts a stopped member i again on its data directory and addresses.
func (c *Cluster) Restart(i int) error {
	m := c.Members[i]
	if m.Running() {
		return fmt.Errorf("cluster: %s is running", m.ID)
	}
	return c.startMember(m, false)
}

// Close stops every member.
func (c *Cluster) Close() error {
	var errs []error
	for _, m := range c.Members {
		errs = append(errs, c.stop(m))
	}
	return errors.Join(errs...)
}
