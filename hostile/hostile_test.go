package hostile

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/replica"
	"github.com/leasehold/leasehold/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions()...)
}

const (
	agentToken = "agent-secret"
	adminToken = "admin-secret"
)

// start runs a one-node cluster with auth and returns a connection to it.
func start(t *testing.T) (*devcluster.Cluster, *grpc.ClientConn) {
	t.Helper()
	c, err := devcluster.Start(context.Background(), devcluster.Options{Dir: t.TempDir(), Size: 1,
		Raft: func(c *replica.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
		},
		Server: grpcserver.Options{Tokens: map[string]grpcserver.Role{agentToken: grpcserver.RoleAgent, adminToken: grpcserver.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.Members[0].ClientAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, conn
}

func withToken(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// agentAllowed is the auth rule for every RPC: true if the agent role may
// call it, false if only admin may. A method the server serves that is not
// listed here fails TestAuthEveryMethod: decide its rule and add it.
var agentAllowed = map[string]bool{
	pb.Leasehold_Claim_FullMethodName:             true,
	pb.Leasehold_Extend_FullMethodName:            true,
	pb.Leasehold_Revoke_FullMethodName:            true,
	pb.Leasehold_Pin_FullMethodName:               false,
	pb.Leasehold_Unpin_FullMethodName:             false,
	pb.Leasehold_Bulk_FullMethodName:              true,
	pb.Leasehold_Renew_FullMethodName:             true,
	pb.Leasehold_Get_FullMethodName:               true,
	pb.Leasehold_List_FullMethodName:              true,
	pb.Leasehold_Pinned_FullMethodName:            true,
	pb.Leasehold_Watch_FullMethodName:             true,
	pb.Leasehold_WaitUntilReleased_FullMethodName: true,
	pb.Leasehold_Status_FullMethodName:            true,
	"/leasehold.v1.Admin/GetSettings":             false,
	"/leasehold.v1.Admin/SetSettings":             false,
	"/leasehold.v1.Admin/AddMember":               false,
	"/leasehold.v1.Admin/RegisterMember":          false,
	"/leasehold.v1.Admin/RemoveMember":            false,
	"/leasehold.v1.Admin/ListMembers":             false,
	"/leasehold.v1.Admin/SaveSnapshot":            false,
}

// call invokes method with an empty request of its input type, over a
// stream when it streams, and returns the status code.
func call(ctx context.Context, conn *grpc.ClientConn, service string, m grpc.MethodInfo) codes.Code {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return codes.Internal
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(m.Name))
	req, resp := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	full := "/" + service + "/" + m.Name
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if !m.IsServerStream && !m.IsClientStream {
		return status.Code(conn.Invoke(ctx, full, req, resp))
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.IsServerStream, ClientStreams: m.IsClientStream}, full)
	if err != nil {
		return status.Code(err)
	}
	// SendMsg returns io.EOF when the server has already ended the stream
	// (a refused token can be answered before the message is sent); the
	// stream's status is then what RecvMsg returns.
	if err := s.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return status.Code(err)
	}
	s.CloseSend()
	// A stream that is accepted sends its first message or blocks (a
	// watch): either way it was let through.
	err = s.RecvMsg(resp)
	if err == nil {
		return codes.OK
	}
	return status.Code(err)
}

// TestAuthEveryMethod: no token and an unknown token are Unauthenticated on
// every method; the agent role gets PermissionDenied exactly on admin
// methods; admin is let through everywhere.
func TestAuthEveryMethod(t *testing.T) {
	c, conn := start(t)
	infos := c.Members[0].Server().API.GRPC().GetServiceInfo()
	n := 0
	for service, info := range infos {
		if !strings.HasPrefix(service, "leasehold.") {
			continue
		}
		for _, m := range info.Methods {
			full := "/" + service + "/" + m.Name
			n++
			agentOK, ruled := agentAllowed[full]
			if !ruled {
				t.Errorf("%s has no auth rule in this test: decide whether agents may call it and add it to agentAllowed", full)
				continue
			}
			bg := context.Background()
			for _, tok := range []string{"", "wrong-token"} {
				if got := call(withToken(bg, tok), conn, service, m); got != codes.Unauthenticated {
					t.Errorf("%s with token %q: %v, want Unauthenticated", full, tok, got)
				}
			}
			got := call(withToken(bg, agentToken), conn, service, m)
			if agentOK && (got == codes.PermissionDenied || got == codes.Unauthenticated) {
				t.Errorf("%s as agent: %v, want it let through", full, got)
			}
			if !agentOK && got != codes.PermissionDenied {
				t.Errorf("%s as agent: %v, want PermissionDenied", full, got)
			}
			if got := call(withToken(bg, adminToken), conn, service, m); got == codes.PermissionDenied || got == codes.Unauthenticated {
				t.Errorf("%s as admin: %v, want it let through", full, got)
			}
		}
	}
	if n < len(pb.Leasehold_ServiceDesc.Methods)+len(pb.Leasehold_ServiceDesc.Streams) {
		t.Fatalf("walked %d methods, fewer than the Leasehold service has", n)
	}
	for full := range agentAllowed {
		svc, name, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
		found := false
		for _, m := range infos[svc].Methods {
			found = found || m.Name == name
		}
		if !found && strings.Contains(full, "Leasehold/") {
			t.Errorf("rule for %s, which the server does not serve", full)
		}
	}
	assertNothingWritten(t, conn)
}

// assertNothingWritten checks that no lease or pin exists.
func assertNothingWritten(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	api := pb.NewLeaseholdClient(conn)
	ctx, cancel := context.WithTimeout(withToken(context.Background(), adminToken), 5*time.Second)
	defer cancel()
	l, err := api.List(ctx, &pb.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Leases) != 0 {
		t.Errorf("leases were written: %v", l.Leases)
	}
	p, err := api.Pinned(ctx, &pb.PinnedRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pins) != 0 {
		t.Errorf("pins were written: %v", p.Pins)
	}
}

func key(name string) *pb.Key { return &pb.Key{Namespace: "ns", Group: "g", Name: name} }

// TestMalformedRequests sends each hostile request and wants the given
// code with a message, and no state change.
func TestMalformedRequests(t *testing.T) {
	_, conn := start(t)
	api := pb.NewLeaseholdClient(conn)
	long := strings.Repeat("a", 257)
	bulk := func(n int, op *pb.Op) *pb.BulkRequest {
		r := &pb.BulkRequest{}
		for i := 0; i < n; i++ {
			r.Ops = append(r.Ops, op)
		}
		return r
	}
	claim := func(k *pb.Key, holder string, ms int64) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := api.Claim(ctx, &pb.ClaimRequest{Key: k, Holder: holder, DurationMs: ms})
			return err
		}
	}
	cases := []struct {
		name string
		do   func(ctx context.Context) error
		want codes.Code
	}{
		{"name too long", claim(key(long), "h", 5000), codes.InvalidArgument},
		{"name empty", claim(key(""), "h", 5000), codes.InvalidArgument},
		{"name NUL", claim(key("a\x00b"), "h", 5000), codes.InvalidArgument},
		{"name newline", claim(key("a\nb"), "h", 5000), codes.InvalidArgument},
		{"name space", claim(key("a b"), "h", 5000), codes.InvalidArgument},
		// proto3 strings must be UTF-8: grpc-go refuses to marshal this, so it
		// never leaves the client (a server would refuse to unmarshal it).
		{"name invalid UTF-8", claim(key("a\xffb"), "h", 5000), codes.Internal},
		{"name DEL", claim(key("a\x7fb"), "h", 5000), codes.InvalidArgument},
		{"name unicode line separator", claim(key("a\u2028b"), "h", 5000), codes.InvalidArgument},
		{"namespace missing", claim(&pb.Key{Group: "g", Name: "n"}, "h", 5000), codes.InvalidArgument},
		{"key missing", claim(nil, "h", 5000), codes.InvalidArgument},
		{"holder empty", claim(key("n"), "", 5000), codes.InvalidArgument},
		{"holder too long", claim(key("n"), long, 5000), codes.InvalidArgument},
		{"holder escape", claim(key("n"), "h\x1b[31m", 5000), codes.InvalidArgument},
		{"duration zero", claim(key("n"), "h", 0), codes.InvalidArgument},
		{"duration negative", claim(key("n"), "h", -5000), codes.InvalidArgument},
		{"duration min int64", claim(key("n"), "h", -1<<63), codes.InvalidArgument},
		{"duration max int64", claim(key("n"), "h", 1<<63-1), codes.InvalidArgument},
		{"duration overflows ns", claim(key("n"), "h", 1<<62), codes.InvalidArgument},
		{"duration above max", claim(key("n"), "h", int64(6*time.Minute/time.Millisecond)), codes.InvalidArgument},
		{"duration below min", claim(key("n"), "h", 1), codes.InvalidArgument},
		{"extend negative", func(ctx context.Context) error {
			_, err := api.Extend(ctx, &pb.ExtendRequest{Key: key("n"), Holder: "h", DurationMs: -1})
			return err
		}, codes.InvalidArgument},
		{"revoke bad key", func(ctx context.Context) error {
			_, err := api.Revoke(ctx, &pb.RevokeRequest{Key: key("a\tb"), Holder: "h"})
			return err
		}, codes.InvalidArgument},
		{"pin empty entity", func(ctx context.Context) error {
			_, err := api.Pin(ctx, &pb.PinRequest{Key: key("n"), Entity: ""})
			return err
		}, codes.InvalidArgument},
		{"unpin entity too long", func(ctx context.Context) error {
			_, err := api.Unpin(ctx, &pb.UnpinRequest{Key: key("n"), Entity: long})
			return err
		}, codes.InvalidArgument},
		{"bulk unknown op kind", func(ctx context.Context) error {
			return bulkErr(api.Bulk(ctx, bulk(1, &pb.Op{Kind: 99, Key: key("n"), Holder: "h", DurationMs: 5000})))
		}, codes.InvalidArgument},
		{"bulk unspecified op kind", func(ctx context.Context) error {
			return bulkErr(api.Bulk(ctx, bulk(1, &pb.Op{Kind: pb.OpKind_OP_KIND_UNSPECIFIED, Key: key("n"), Holder: "h", DurationMs: 5000})))
		}, codes.InvalidArgument},
		{"bulk negative duration", func(ctx context.Context) error {
			return bulkErr(api.Bulk(ctx, bulk(1, &pb.Op{Kind: pb.OpKind_OP_KIND_CLAIM, Key: key("n"), Holder: "h", DurationMs: -1})))
		}, codes.InvalidArgument},
		{"bulk over the op cap", func(ctx context.Context) error {
			return bulkErr(api.Bulk(ctx, bulk(grpcserver.DefaultMaxBulkOps+1, &pb.Op{Kind: pb.OpKind_OP_KIND_CLAIM, Key: key("n"), Holder: "h", DurationMs: 5000})))
		}, codes.InvalidArgument},
		{"bulk over the message cap", func(ctx context.Context) error {
			big := strings.Repeat("x", 256)
			// 10,000 ops of maximal valid fields fit in the cap by design, so
			// twice as many oversized ones: over 16 MiB.
			return bulkErr(api.Bulk(ctx, bulk(2*grpcserver.DefaultMaxBulkOps, &pb.Op{Kind: pb.OpKind_OP_KIND_CLAIM,
				Key: &pb.Key{Namespace: big, Group: big, Name: big}, Holder: big + big + big, DurationMs: 5000})))
		}, codes.ResourceExhausted},
		{"get bad key", func(ctx context.Context) error {
			_, err := api.Get(ctx, &pb.GetRequest{Key: key("")})
			return err
		}, codes.InvalidArgument},
		{"list negative page size", func(ctx context.Context) error {
			_, err := api.List(ctx, &pb.ListRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument},
		{"list group without namespace", func(ctx context.Context) error {
			_, err := api.List(ctx, &pb.ListRequest{Group: "g"})
			return err
		}, codes.InvalidArgument},
		{"list garbage page token", func(ctx context.Context) error {
			_, err := api.List(ctx, &pb.ListRequest{PageToken: "garbage\x00token"})
			return err
		}, codes.InvalidArgument},
		{"watch name without group", func(ctx context.Context) error {
			return firstRecv(api.Watch(ctx, &pb.WatchRequest{Namespace: "ns", Name: "n"}))
		}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(withToken(context.Background(), adminToken), 10*time.Second)
			defer cancel()
			err := tc.do(ctx)
			st, _ := status.FromError(err)
			if st.Code() != tc.want {
				t.Fatalf("got %v (%v), want %v", st.Code(), err, tc.want)
			}
			if st.Message() == "" {
				t.Fatal("error without a message")
			}
			t.Logf("%v: %s", st.Code(), st.Message())
		})
	}
	assertNothingWritten(t, conn)
}

// bulkErr turns a Bulk answer into an error: the request's own, else the
// first per-op error (as an InvalidArgument status if it is one).
func bulkErr(r *pb.BulkResponse, err error) error {
	if err != nil {
		return err
	}
	for _, res := range r.Results {
		if e := res.Error; e != nil {
			if e.Code == "invalid_argument" {
				return status.Error(codes.InvalidArgument, e.Message+" (field "+e.Field+")")
			}
			return status.Error(codes.Unknown, e.Code+": "+e.Message)
		}
	}
	return nil
}

func firstRecv(s grpc.ServerStreamingClient[pb.WatchResponse], err error) error {
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

// TestWatcherFlood opens 1,000 watch streams at once: each is either
// accepted or refused with a clear error, the server keeps serving writes
// and reads while they are open, and every stream ends when cancelled.
func TestWatcherFlood(t *testing.T) {
	_, conn := start(t)
	api := pb.NewLeaseholdClient(conn)
	ctx, cancel := context.WithTimeout(withToken(context.Background(), agentToken), 60*time.Second)
	defer cancel()
	wctx, stopWatches := context.WithCancel(ctx)
	const n = 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, map[codes.Code]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := api.Watch(wctx, &pb.WatchRequest{Namespace: "ns"})
			if err == nil {
				_, err = s.Recv() // the first (empty) batch says the watch is registered
			}
			mu.Lock()
			if err == nil {
				accepted++
			} else {
				st, _ := status.FromError(err)
				refused[st.Code()]++
				if st.Message() == "" {
					t.Errorf("watch refused without a message: %v", err)
				}
			}
			mu.Unlock()
			if err == nil {
				for {
					if _, err := s.Recv(); err != nil {
						return
					}
				}
			}
		}()
	}
	// The server still answers while the watchers are open.
	if _, err := api.Claim(ctx, &pb.ClaimRequest{Key: key("flood"), Holder: "h", DurationMs: 5000}); err != nil {
		t.Fatalf("claim during the flood: %v", err)
	}
	if _, err := api.Get(ctx, &pb.GetRequest{Key: key("flood")}); err != nil {
		t.Fatalf("get during the flood: %v", err)
	}
	stopWatches()
	wg.Wait()
	t.Logf("%d watch streams accepted, refused: %v", accepted, refused)
	if accepted+sum(refused) != n {
		t.Fatalf("%d streams unaccounted for", n-accepted-sum(refused))
	}
	if accepted == 0 {
		t.Fatal("no watch accepted")
	}
	for code := range refused {
		if code != codes.ResourceExhausted && code != codes.Unavailable && code != codes.Canceled {
			t.Errorf("watch refused with %v", code)
		}
	}
}

func sum(m map[codes.Code]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// TestWatcherFloodOverTheCap: one caller opening more Watch and
// WaitUntilReleased streams than server.DefaultMaxWatchersPerCaller gets
// exactly that many; the rest are refused ResourceExhausted with a message,
// another caller is not locked out, writes go on, and the slots come back
// when the streams end (issue 17 #3).
func TestWatcherFloodOverTheCap(t *testing.T) {
	_, conn := start(t)
	api := pb.NewLeaseholdClient(conn)
	ctx, cancel := context.WithTimeout(withToken(context.Background(), agentToken), 60*time.Second)
	defer cancel()
	wctx, stopWatches := context.WithCancel(ctx)
	const n = grpcserver.DefaultMaxWatchersPerCaller + 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, map[codes.Code]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := api.Watch(wctx, &pb.WatchRequest{Namespace: "ns"})
			if err == nil {
				_, err = s.Recv()
			}
			mu.Lock()
			if err == nil {
				accepted++
			} else if st, _ := status.FromError(err); wctx.Err() == nil {
				refused[st.Code()]++
				if st.Message() == "" {
					t.Errorf("watch refused without a message: %v", err)
				}
			}
			mu.Unlock()
			if err == nil {
				for {
					if _, err := s.Recv(); err != nil {
						return
					}
				}
			}
		}()
	}
	testutil.WaitFor(t, 30*time.Second, "every stream accepted or refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return accepted+sum(refused) == n
	})
	mu.Lock()
	t.Logf("%d accepted, refused %v", accepted, refused)
	if accepted != grpcserver.DefaultMaxWatchersPerCaller || refused[codes.ResourceExhausted] != n-accepted {
		t.Errorf("%d accepted, refused %v; want %d accepted and the rest ResourceExhausted", accepted, refused, grpcserver.DefaultMaxWatchersPerCaller)
	}
	mu.Unlock()
	// A wait stream counts too.
	if _, err := api.Claim(ctx, &pb.ClaimRequest{Key: key("flood"), Holder: "h", DurationMs: 60000}); err != nil {
		t.Fatalf("claim during the flood: %v", err)
	}
	ws, err := api.WaitUntilReleased(ctx, &pb.WaitRequest{Key: key("flood")})
	if err == nil {
		_, err = ws.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("wait stream over the cap: %v", err)
	}
	// Another caller still gets a watch.
	actx, acancel := context.WithCancel(withToken(context.Background(), adminToken))
	if err := firstRecv(api.Watch(actx, &pb.WatchRequest{Namespace: "ns"})); err != nil {
		t.Errorf("another caller's watch during the flood: %v", err)
	}
	acancel()
	stopWatches()
	wg.Wait()
	// The slots are given back when the streams end.
	testutil.WaitFor(t, 10*time.Second, "a watch after the flood", func() bool {
		c, cc := context.WithCancel(ctx)
		defer cc()
		return firstRecv(api.Watch(c, &pb.WatchRequest{Namespace: "ns"})) == nil
	})
}
