package wire

import (
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// TestErrorRoundTrip: every code survives both encodings (RPC status and
// bulk per-op Error) with its fields.
func TestErrorRoundTrip(t *testing.T) {
	for code := lease.CodeDenied; code <= lease.CodeCanceled; code++ {
		in := &lease.Error{Code: code, Message: "m", Field: "f", Holder: "h", ExpiresIn: 1500 * time.Millisecond,
			LeaderID: "n2", LeaderAddr: "127.0.0.1:7102", RetryAfter: 250 * time.Millisecond}
		if code != lease.CodeDenied {
			in.ExpiresIn = 0 // only denials carry it
		}
		st := Status(in)
		if st.Code() != code.GRPCCode() {
			t.Fatalf("%v: grpc code %v", code, st.Code())
		}
		out, ok := FromStatus(st)
		if !ok || !errors.Is(out, &lease.Error{Code: code}) || *out != *in {
			t.Errorf("%v: status round trip %#v", code, out)
		}
		if out := Error(ErrorPB(in)); *out != *in {
			t.Errorf("%v: bulk round trip %#v", code, out)
		}
	}
}
