package logentry

import (
	"fmt"

	"github.com/leasehold/leasehold/internal/binenc"
)

// Member is one server's entry in the replicated member directory.
type Member struct {
	ID         string // Raft server ID
	ClientAddr string // gRPC API address
	HTTPAddr   string // metrics, health and status page
}

// EncodeMember encodes m as a KindMember payload.
func EncodeMember(m Member) []byte {
	var b []byte
	b = binenc.AppendString(b, m.ID)
	b = binenc.AppendString(b, m.ClientAddr)
	return binenc.AppendString(b, m.HTTPAddr)
}

// DecodeMember decodes a KindMember payload.
func DecodeMember(p []byte) (Member, error) {
	d := newDecoder(p)
	m := Member{ID: d.Str(), ClientAddr: d.Str(), HTTPAddr: d.Str()}
	if d.Err == nil && len(d.B) != 0 {
		d.Fail("member")
	}
	if d.Err == nil && m.ID == "" {
		d.Err = fmt.Errorf("%w: member without ID", ErrCorrupt)
	}
	return m, d.Err
}
