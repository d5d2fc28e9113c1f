package grpcserver

import (
	"context"
	"crypto/sha256"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/leasehold/leasehold/lease"
)

// Defaults of the watch stream limits (Options.MaxWatchers and
// MaxWatchersPerCaller). Every Watch, WaitUntilReleased and Renew stream counts.
// A manager holds one watch per namespace it waits in, so the per-caller
// default leaves room for a thousand namespaces from one host.
const (
	DefaultMaxWatchers          = 10_000
	DefaultMaxWatchersPerCaller = 1_000
)

// watchRetryAfter is the retry-after of a refused stream: a slot frees only
// when another stream of the caller (or server) ends.
const watchRetryAfter = time.Second

// watchLimits counts the open streams of the server and of each caller.
type watchLimits struct {
	maxTotal, maxPerCaller int
	mu                     sync.Mutex
	total                  int
	perCaller              map[callerKey]int
}

// callerKey identifies a caller: the hash of its bearer token (none on an
// open server) and its host, so agents that share a token on different
// machines have their own allowance and one host cannot take the server's.
type callerKey struct {
	token [32]byte
	host  string
}

func callerOf(ctx context.Context) callerKey {
	var k callerKey
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) == 1 {
			k.token = sha256.Sum256([]byte(v[0]))
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		k.host = p.Addr.String()
		if h, _, err := net.SplitHostPort(k.host); err == nil {
			k.host = h
		}
	}
	return k
}

// acquire takes a stream slot for ctx's caller, or says why not; release
// must be called once the stream ends.
func (l *watchLimits) acquire(ctx context.Context) (release func(), err error) {
	k := callerOf(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal {
		return nil, &lease.Error{Code: lease.CodeOverloaded, RetryAfter: watchRetryAfter,
			Message: "this server has its maximum of watch, wait and renew streams open; retry later or on another server"}
	}
	if l.perCaller[k] >= l.maxPerCaller {
		return nil, &lease.Error{Code: lease.CodeOverloaded, RetryAfter: watchRetryAfter,
			Message: "this caller has its maximum of watch, wait and renew streams open on this server; close some"}
	}
	l.total++
	l.perCaller[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.perCaller[k]--; l.perCaller[k] == 0 {
				delete(l.perCaller, k)
			}
		})
	}, nil
}
