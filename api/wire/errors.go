package wire

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/leasehold/leasehold/api/leaseholdv1"
	"github.com/leasehold/leasehold/lease"
)

// grpcCodes is the gRPC status code each lease.Code travels as. It lives
// here, at the API edge, so the domain package lease (and the replicated
// core that uses it) depends on no transport. Each code has its own gRPC
// code, so a bare status (one without Leasehold details) maps back.
var grpcCodes = map[lease.Code]codes.Code{
	lease.CodeOK:               codes.OK,
	lease.CodeDenied:           codes.AlreadyExists,
	lease.CodeNotHeld:          codes.FailedPrecondition,
	lease.CodeInvalidArgument:  codes.InvalidArgument,
	lease.CodeNotLeader:        codes.Aborted,
	lease.CodeOverloaded:       codes.ResourceExhausted,
	lease.CodeDeadlineExceeded: codes.DeadlineExceeded,
	lease.CodeUnavailable:      codes.Unavailable,
	lease.CodeUnknown:          codes.Unknown,
	lease.CodeUnauthenticated:  codes.Unauthenticated,
	lease.CodePermissionDenied: codes.PermissionDenied,
	lease.CodeCanceled:         codes.Canceled,
	lease.CodeCompacted:        codes.OutOfRange,
}

// GRPCCode is the gRPC status code an error of code c travels as (Unknown
// for a code this build does not know).
func GRPCCode(c lease.Code) codes.Code {
	if gc, ok := grpcCodes[c]; ok {
		return gc
	}
	return codes.Unknown
}

// CodeFromGRPC maps a bare gRPC status code (one without Leasehold details)
// to the taxonomy.
func CodeFromGRPC(gc codes.Code) lease.Code {
	for c, g := range grpcCodes {
		if g == gc {
			return c
		}
	}
	return lease.CodeUnknown
}

// Domain is the ErrorInfo domain of every Leasehold error.
const Domain = "leasehold.v1"

// Metadata keys of the ErrorInfo detail.
const (
	mdMessage    = "message"
	mdField      = "field"
	mdHolder     = "holder"
	mdExpiresIn  = "expires_in_ms"
	mdLeaderID   = "leader_id"
	mdLeaderAddr = "leader_addr"
	mdRetryAfter = "retry_after_ms"
	mdRetryable  = "retryable"
	// The holder's lease and the replicated time of a denied or not_held
	// answer (lease.Error Token, Start, Expiry, Now), nanoseconds like the
	// _ns fields of results.
	mdToken  = "token"
	mdStart  = "start_ns"
	mdExpiry = "expiry_ns"
	mdNow    = "now_ns"
	// The oldest index a watch can resume from (compacted).
	mdIndex = "oldest_index"
)

// carriesLease reports whether e's code states the holder's lease and the
// replicated time (set by the state machine for denied and not_held).
func carriesLease(e *lease.Error) bool {
	return (e.Code == lease.CodeDenied || e.Code == lease.CodeNotHeld) && e.Now != 0
}

// AsError converts any error into a *lease.Error. Context errors become
// CodeCanceled or, for a deadline, CodeUnknown: a server whose own context
// ran out while waiting for the backend does not know whether the op was
// applied (the backend reports a definite DeadlineExceeded itself).
func AsError(err error) *lease.Error {
	var le *lease.Error
	switch {
	case errors.As(err, &le):
		return le
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return lease.ContextError(err, true)
	}
	return &lease.Error{Code: lease.CodeUnknown, Message: err.Error(), Cause: err}
}

// Status converts an error into the gRPC status the server sends.
func Status(err error) *status.Status {
	e := AsError(err)
	st := status.New(GRPCCode(e.Code), e.Error())
	info := &errdetails.ErrorInfo{Domain: Domain, Reason: e.Code.String(), Metadata: map[string]string{
		mdRetryable: strconv.FormatBool(e.Code.Retryable()),
	}}
	md := info.Metadata
	setIf := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	setIf(mdMessage, e.Message)
	setIf(mdField, e.Field)
	setIf(mdHolder, e.Holder)
	setIf(mdLeaderID, e.LeaderID)
	setIf(mdLeaderAddr, e.LeaderAddr)
	if e.Code == lease.CodeDenied {
		md[mdExpiresIn] = strconv.FormatInt(ceilMs(e.ExpiresIn), 10)
	}
	if carriesLease(e) {
		md[mdToken] = strconv.FormatUint(e.Token, 10)
		md[mdStart] = strconv.FormatInt(int64(e.Start), 10)
		md[mdExpiry] = strconv.FormatInt(int64(e.Expiry), 10)
		md[mdNow] = strconv.FormatInt(int64(e.Now), 10)
	}
	if e.Code == lease.CodeCompacted {
		md[mdIndex] = strconv.FormatUint(e.Index, 10)
	}
	details := []protoadapt.MessageV1{info}
	if e.RetryAfter > 0 {
		md[mdRetryAfter] = strconv.FormatInt(ceilMs(e.RetryAfter), 10)
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		st = withDetails
	}
	return st
}

// StatusError is Status(err).Err().
func StatusError(err error) error { return Status(err).Err() }

// FromStatus restores the *lease.Error a Leasehold server sent. ok is false
// when st carries no Leasehold ErrorInfo (the error came from the transport,
// a proxy or a non-Leasehold server); then the caller must classify it.
func FromStatus(st *status.Status) (e *lease.Error, ok bool) {
	var info *errdetails.ErrorInfo
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == Domain {
				info = d
			}
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	if info == nil {
		return nil, false
	}
	code, known := lease.CodeFromName(info.GetReason())
	if !known {
		code = CodeFromGRPC(st.Code())
	}
	md := info.GetMetadata()
	e = &lease.Error{Code: code, Message: md[mdMessage], Field: md[mdField], Holder: md[mdHolder],
		LeaderID: md[mdLeaderID], LeaderAddr: md[mdLeaderAddr]}
	if v, err := strconv.ParseInt(md[mdExpiresIn], 10, 64); err == nil {
		e.ExpiresIn = FromMs(v)
	}
	// All four or none: a partial set would place the answer wrongly.
	tok, terr := strconv.ParseUint(md[mdToken], 10, 64)
	start, serr := strconv.ParseInt(md[mdStart], 10, 64)
	expiry, xerr := strconv.ParseInt(md[mdExpiry], 10, 64)
	now, nerr := strconv.ParseInt(md[mdNow], 10, 64)
	if terr == nil && serr == nil && xerr == nil && nerr == nil {
		e.Token, e.Start, e.Expiry, e.Now = tok, time.Duration(start), time.Duration(expiry), time.Duration(now)
	}
	if v, err := strconv.ParseUint(md[mdIndex], 10, 64); err == nil && code == lease.CodeCompacted {
		e.Index = v
	}
	if retry != nil && retry.GetRetryDelay() != nil {
		e.RetryAfter = retry.GetRetryDelay().AsDuration()
	} else if v, err := strconv.ParseInt(md[mdRetryAfter], 10, 64); err == nil {
		e.RetryAfter = FromMs(v)
	}
	return e, true
}

// ErrorPB converts an error into the Error message of a bulk result.
func ErrorPB(err error) *pb.Error {
	e := AsError(err)
	out := &pb.Error{Code: e.Code.String(), Message: e.Message, Retryable: e.Code.Retryable(), Field: e.Field,
		Holder: e.Holder, LeaderId: e.LeaderID, LeaderAddr: e.LeaderAddr, RetryAfterMs: ceilMs(e.RetryAfter)}
	if e.Code == lease.CodeDenied {
		out.ExpiresInMs = ceilMs(e.ExpiresIn)
	}
	if carriesLease(e) {
		out.Token, out.StartNs, out.ExpiryNs, out.NowNs = e.Token, int64(e.Start), int64(e.Expiry), int64(e.Now)
	}
	return out
}

// Error converts a bulk result's Error back into a *lease.Error.
func Error(p *pb.Error) *lease.Error {
	code, ok := lease.CodeFromName(p.GetCode())
	if !ok {
		code = lease.CodeUnknown
	}
	return &lease.Error{Code: code, Message: p.GetMessage(), Field: p.GetField(), Holder: p.GetHolder(),
		ExpiresIn: FromMs(p.GetExpiresInMs()), LeaderID: p.GetLeaderId(), LeaderAddr: p.GetLeaderAddr(),
		RetryAfter: FromMs(p.GetRetryAfterMs()), Token: p.GetToken(), Start: time.Duration(p.GetStartNs()),
		Expiry: time.Duration(p.GetExpiryNs()), Now: time.Duration(p.GetNowNs())}
}
