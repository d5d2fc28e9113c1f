package wire

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/leasehold/leasehold/lease"
)

// The gRPC mapping, written out independently of grpcCodes: every code has
// one, no two share one, and a bare status maps back.
func TestGRPCCodes(t *testing.T) {
	want := map[lease.Code]codes.Code{
		lease.CodeOK: codes.OK, lease.CodeDenied: codes.AlreadyExists, lease.CodeNotHeld: codes.FailedPrecondition,
		lease.CodeInvalidArgument: codes.InvalidArgument, lease.CodeNotLeader: codes.Aborted,
		lease.CodeOverloaded: codes.ResourceExhausted, lease.CodeDeadlineExceeded: codes.DeadlineExceeded,
		lease.CodeUnavailable: codes.Unavailable, lease.CodeUnknown: codes.Unknown,
		lease.CodeUnauthenticated: codes.Unauthenticated, lease.CodePermissionDenied: codes.PermissionDenied,
		lease.CodeCanceled: codes.Canceled, lease.CodeCompacted: codes.OutOfRange,
	}
	seen := map[codes.Code]bool{}
	for _, c := range lease.Codes() {
		gc, ok := want[c]
		if !ok {
			t.Errorf("%v: no gRPC code in the test table", c)
			continue
		}
		if GRPCCode(c) != gc || CodeFromGRPC(gc) != c {
			t.Errorf("%v: GRPCCode %v, CodeFromGRPC(%v) %v; want %v", c, GRPCCode(c), gc, CodeFromGRPC(gc), gc)
		}
		if seen[gc] {
			t.Errorf("%v: gRPC code %v is shared", c, gc)
		}
		seen[gc] = true
	}
	if GRPCCode(lease.Code(200)) != codes.Unknown {
		t.Error("an out-of-range code must travel as Unknown")
	}
	for _, gc := range []codes.Code{codes.NotFound, codes.Unimplemented, codes.Internal, codes.DataLoss, 99} {
		if c := CodeFromGRPC(gc); c != lease.CodeUnknown {
			t.Errorf("CodeFromGRPC(%v) = %v, want unknown", gc, c)
		}
	}
}
