package wire

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/lease"
)

// FuzzBulkRequest decodes arbitrary bytes as a Bulk request, the largest
// message a client sends, and converts and validates each op as the server
// does. Nothing may panic, and an op that validates must mean what its
// wire form says: the duration in milliseconds must convert without
// wrapping around (1<<62 ms wraps to a plausible duration in nanoseconds).
func FuzzBulkRequest(f *testing.F) {
	seed := &pb.BulkRequest{Ops: []*pb.Op{
		{Kind: pb.OpKind_OP_KIND_CLAIM, Key: &pb.Key{Namespace: "ns", Group: "g", Name: "n"}, Holder: "h", DurationMs: 5000},
		{Kind: pb.OpKind_OP_KIND_REVOKE, Key: &pb.Key{Namespace: "ns", Group: "g", Name: "n"}, Holder: "h"},
		{Kind: 99, DurationMs: 1 << 62},
	}}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.BulkRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		for _, o := range req.Ops {
			c := Command(o)
			if c.Validate(lease.DefaultLimits) != nil {
				continue
			}
			if c.Op == lease.OpClaim || c.Op == lease.OpExtend {
				if o.DurationMs <= 0 || o.DurationMs > int64(lease.MaxDurationCap/time.Millisecond) {
					t.Fatalf("op with duration_ms %d validated as %v", o.DurationMs, c.Duration)
				}
			}
			back := CommandPB(&c)
			if Key(back.Key) != c.Key || back.Holder != c.Holder {
				t.Fatalf("round trip changed the op: %v -> %v", o, back)
			}
		}
	})
}
