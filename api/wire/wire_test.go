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
	for code := lease.CodeDenied; code <= lease.CodeCompacted; code++ {
		in := &lease.Error{Code: code, Message: "m", Field: "f", Holder: "h", ExpiresIn: 1500 * time.Millisecond,
			LeaderID: "n2", LeaderAddr: "127.0.0.1:7102", RetryAfter: 250 * time.Millisecond}
		if code != lease.CodeDenied {
			in.ExpiresIn = 0 // only denials carry it
		}
		if code == lease.CodeDenied || code == lease.CodeNotHeld {
			// Only these carry the holder's lease and the replicated time;
			// values beyond a millisecond's precision must survive exactly.
			in.Token, in.Start, in.Expiry, in.Now = 1<<40+3, 1234567891, 2345678912, 1999999999
		}
		if code == lease.CodeCompacted {
			in.Index = 1<<40 + 5
		}
		st := Status(in)
		if st.Code() != GRPCCode(code) {
			t.Fatalf("%v: grpc code %v", code, st.Code())
		}
		out, ok := FromStatus(st)
		if !ok || !errors.Is(out, &lease.Error{Code: code}) || *out != *in {
			t.Errorf("%v: status round trip %#v", code, out)
		}
		want := *in
		want.Index = 0 // a watch error, never a bulk result's
		if out := Error(ErrorPB(in)); *out != want {
			t.Errorf("%v: bulk round trip %#v", code, out)
		}
	}
}

// TestErrorLeaseTime: a denial or not-held answer made from a state
// machine result keeps the holder's lease and the replicated time through
// both encodings; one without a known time (Now 0) sends none, and the
// other codes never send them.
func TestErrorLeaseTime(t *testing.T) {
	r := lease.Result{Code: lease.CodeNotHeld, Holder: "h9", Token: 42, Start: 3*time.Second + 7, Expiry: 5*time.Second + 11, Now: 4*time.Second + 13}
	for _, code := range []lease.Code{lease.CodeDenied, lease.CodeNotHeld} {
		r.Code = code
		var in *lease.Error
		if !errors.As(r.Err(), &in) {
			t.Fatalf("%v: %v", code, r.Err())
		}
		for name, out := range map[string]*lease.Error{"status": mustFromStatus(t, in), "bulk": Error(ErrorPB(in))} {
			if out.Holder != r.Holder || out.Token != r.Token || out.Start != r.Start || out.Expiry != r.Expiry || out.Now != r.Now {
				t.Errorf("%v %s: %#v, want the lease of %+v", code, name, out, r)
			}
		}
	}
	// The key absent (not held by anyone): token 0 is still a statement.
	absent := lease.Result{Code: lease.CodeNotHeld, Now: time.Second}
	if out := mustFromStatus(t, absent.Err()); out.Now != time.Second || out.Holder != "" || out.Token != 0 {
		t.Errorf("absent not-held: %#v", out)
	}
	noTime := &lease.Error{Code: lease.CodeDenied, Holder: "h", Token: 5, Expiry: time.Second}
	if out := mustFromStatus(t, noTime); out.Token != 0 || out.Now != 0 {
		t.Errorf("denial without time sent its lease: %#v", out)
	}
	other := &lease.Error{Code: lease.CodeUnknown, Token: 5, Now: time.Second}
	if out := mustFromStatus(t, other); out.Token != 0 || out.Now != 0 {
		t.Errorf("unknown error sent a lease: %#v", out)
	}
	if out := Error(ErrorPB(other)); out.Token != 0 || out.Now != 0 {
		t.Errorf("unknown bulk error sent a lease: %#v", out)
	}
}

func mustFromStatus(t *testing.T, err error) *lease.Error {
	t.Helper()
	out, ok := FromStatus(Status(err))
	if !ok {
		t.Fatalf("no Leasehold error in the status of %v", err)
	}
	return out
}
