package faults

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/leasehold/leasehold/lease"
)

// Invariant 9 (DESIGN.md): what a client is told it holds, it holds. The
// checks on replicated time (linearize) cannot see a grant that one server
// reports and the replicated state then loses (a flag-dependent apply, a
// stream revoking the tenure it just reported, a leader clock that counts
// an election gap): every answer there is consistent with some replica. So
// this check works on what the clients believed, in real time.

// Via says how a client learnt of a grant.
type Via string

const (
	ViaClaim  Via = "claim"
	ViaExtend Via = "extend"
	ViaStream Via = "stream" // claim-on-release stream
)

// GrantSeen is one answer that told a client it holds key: a successful
// claim or extend, or a claim-on-release stream's grant. Times are real
// times since the recording began.
type GrantSeen struct {
	Op     int // the client op's id, for messages
	Key    lease.Key
	Holder string
	Token  uint64
	Via    Via
	// Call is when the client call began (for a stream, the call of
	// ClaimOnRelease: the grant was applied after it); Return is when
	// the answer arrived.
	Call, Return time.Duration
	// Remaining is Expiry - Now of the answer: the replicated time the
	// lease had left when the op applied.
	Remaining time.Duration
	// Fresh marks a claim's answer that granted the lease (outcome
	// granted): Start is then the replicated time of the grant. Never set
	// for a stream: a client may report a stream's grant after confirming
	// it with an extend, whose time Start then is.
	Fresh bool
	Start time.Duration
}

// RevokeCall is a holder's own revoke of key, called at Call: from then on
// the holder no longer counts on holding the key.
type RevokeCall struct {
	Key    lease.Key
	Holder string
	Call   time.Duration
}

// Belief is the real-time interval in which a client may act as holder:
// from the answer's arrival to Call + Remaining/Rate - Jump (the lease was
// applied after the call, and replicated time runs at most Rate times as
// fast as real time plus forward jumps), cut at the holder's next own
// revoke of the key.
type Belief struct {
	GrantSeen
	From, To time.Duration
}

func (b Belief) String() string {
	return fmt.Sprintf("op #%d %s %s token %d by %s [call %v, answer %v, %v left] believed [%v, %v)",
		b.Op, b.Key, b.Holder, b.Token, b.Via, b.Call, b.Return, b.Remaining, b.From, b.To)
}

// TenureViolation is two holders who both believed they held one key at once.
type TenureViolation struct {
	A, B    Belief
	Overlap time.Duration
}

func (v TenureViolation) String() string {
	return fmt.Sprintf("two holders of %s at once for %v:\n    %s\n    %s", v.A.Key, v.Overlap, v.A, v.B)
}

// Beliefs turns the grants clients saw into believed tenures under the
// clock bounds b.
func Beliefs(grants []GrantSeen, revokes []RevokeCall, b Bounds) []Belief {
	rate := max(b.Rate, 1)
	type kh struct {
		k lease.Key
		h string
	}
	rv := map[kh][]time.Duration{}
	for _, r := range revokes {
		rv[kh{r.Key, r.Holder}] = append(rv[kh{r.Key, r.Holder}], r.Call)
	}
	var out []Belief
	for _, g := range grants {
		to := g.Call + time.Duration(float64(g.Remaining)/rate) - b.Jump
		for _, c := range rv[kh{g.Key, g.Holder}] {
			if c > g.Call {
				to = min(to, c)
			}
		}
		if to > g.Return {
			out = append(out, Belief{GrantSeen: g, From: g.Return, To: to})
		}
	}
	return out
}

// CheckTenures reports every pair of beliefs of different holders on one
// key that overlap in real time. It is a pure function of its input.
func CheckTenures(bs []Belief) []TenureViolation {
	byKey := map[lease.Key][]Belief{}
	for _, b := range bs {
		byKey[b.Key] = append(byKey[b.Key], b)
	}
	var out []TenureViolation
	for _, kb := range byKey {
		slices.SortFunc(kb, func(x, y Belief) int { return cmp.Compare(x.From, y.From) })
		for i, a := range kb {
			for _, b := range kb[i+1:] {
				if b.From >= a.To {
					break // sorted by From: no later belief starts before a ends
				}
				if a.Holder != b.Holder {
					out = append(out, TenureViolation{A: a, B: b, Overlap: min(a.To, b.To) - b.From})
				}
			}
		}
	}
	slices.SortFunc(out, func(x, y TenureViolation) int { return cmp.Compare(x.B.From, y.B.From) })
	return out
}

// tenureLog records grants seen and revokes called, concurrently.
type tenureLog struct {
	mu       sync.Mutex
	grants   []GrantSeen
	revokes  []RevokeCall
	releases []ReleaseSeen
}

func (l *tenureLog) grant(g GrantSeen) {
	l.mu.Lock()
	l.grants = append(l.grants, g)
	l.mu.Unlock()
}

func (l *tenureLog) revoke(k lease.Key, holder string, call time.Duration) {
	l.mu.Lock()
	l.revokes = append(l.revokes, RevokeCall{Key: k, Holder: holder, Call: call})
	l.mu.Unlock()
}

func (l *tenureLog) snapshot() ([]GrantSeen, []RevokeCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.grants), slices.Clone(l.revokes)
}

// ReleaseSeen is a WaitUntilReleased call that reported the key released:
// at some instant between Call and Return nobody held it.
type ReleaseSeen struct {
	Key          lease.Key
	Call, Return time.Duration
}

// ReleaseViolation is a release reported while one holder believed it held
// the key for the whole wait.
type ReleaseViolation struct {
	Release ReleaseSeen
	Held    Belief
}

func (v ReleaseViolation) String() string {
	return fmt.Sprintf("WaitUntilReleased(%s) [call %v, return %v] reported a release, but throughout it %s",
		v.Release.Key, v.Release.Call, v.Release.Return, v.Held)
}

// CheckReleases reports each release that some belief covers from the
// wait's call to its return: that holder held the key continuously, so no
// release happened in between. It is a pure function of its input.
func CheckReleases(bs []Belief, rs []ReleaseSeen) []ReleaseViolation {
	byKey := map[lease.Key][]Belief{}
	for _, b := range bs {
		byKey[b.Key] = append(byKey[b.Key], b)
	}
	var out []ReleaseViolation
	for _, r := range rs {
		for _, b := range byKey[r.Key] {
			if b.From <= r.Call && b.To >= r.Return {
				out = append(out, ReleaseViolation{Release: r, Held: b})
				break
			}
		}
	}
	return out
}

func (l *tenureLog) released(r ReleaseSeen) {
	l.mu.Lock()
	l.releases = append(l.releases, r)
	l.mu.Unlock()
}

func (l *tenureLog) allReleases() []ReleaseSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.releases)
}
