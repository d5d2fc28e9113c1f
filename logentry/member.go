package logentry

import "fmt"

// Member is one server's entry in the replicated member directory.
type Member struct {
	ID         string // Raft server ID
	ClientAddr string // gRPC API address
	HTTPAddr   string // metrics, health and status page
}

// EncodeMember encodes m as a KindMember payload.
func EncodeMember(m Member) []byte {
	var b []byte
	b = appendString(b, m.ID)
	b = appendString(b, m.ClientAddr)
	return appendString(b, m.HTTPAddr)
}

// DecodeMember decodes a KindMember payload.
func DecodeMember(p []byte) (Member, error) {
	d := decoder{b: p}
	m := Member{ID: d.string(), ClientAddr: d.string(), HTTPAddr: d.string()}
	if d.err == nil && len(d.b) != 0 {
		d.fail("member")
	}
	if d.err == nil && m.ID == "" {
		d.err = fmt.Errorf("%w: member without ID", ErrCorrupt)
	}
	return m, d.err
}
