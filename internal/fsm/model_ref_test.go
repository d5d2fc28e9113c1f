package fsm

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
)

// refModel is the reference for the model-based test: the contract written
// out plainly with maps, slices and linear scans, sharing no code with the
// Machine (not its heaps, not its validation, not its settings decoder).
// Where the contract leaves an order open, the model fixes the one the
// machine must follow on every replica: leases due at one instant expire in
// key order (namespace, group, name), and each release grants its key's
// first live claimant, taking the next token, before the next release.
type refModel struct {
	now      time.Duration
	index    uint64
	seq      uint64
	leases   map[lease.Key]*mLease
	pins     map[lease.Key]map[string]bool
	queues   map[lease.Key][]*mWaiter
	limits   lease.Limits
	version  uint64
	settings []byte
	members  map[string]logentry.Member
	events   []lease.Event
}

type mLease struct {
	holder        string
	token         uint64
	start, expiry time.Duration
}

type mWaiter struct {
	holder           string
	duration, expiry time.Duration
}

func newRefModel() *refModel {
	return &refModel{leases: map[lease.Key]*mLease{}, pins: map[lease.Key]map[string]bool{},
		queues: map[lease.Key][]*mWaiter{}, members: map[string]logentry.Member{}, limits: lease.Limits{MinDuration: time.Second, MaxDuration: 5 * time.Minute}}
}

func keyOrder(a, b lease.Key) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group), strings.Compare(a.Name, b.Name))
}

// modelLimits decodes the head of a settings payload with the rule of the
// contract: codec version 1, then min and max; min >= 1ms, min <= max <= 24h.
func modelLimits(p []byte) (lease.Limits, string) {
	v, n := binary.Uvarint(p)
	if n <= 0 || v != 1 {
		return lease.Limits{}, "settings"
	}
	lo, n1 := binary.Varint(p[n:])
	if n1 <= 0 {
		return lease.Limits{}, "settings"
	}
	hi, n2 := binary.Varint(p[n+n1:])
	if n2 <= 0 {
		return lease.Limits{}, "settings"
	}
	l := lease.Limits{MinDuration: time.Duration(lo), MaxDuration: time.Duration(hi)}
	switch {
	case l.MinDuration < time.Millisecond:
		return l, "min_duration"
	case l.MaxDuration < l.MinDuration || l.MaxDuration > 24*time.Hour:
		return l, "max_duration"
	}
	return l, ""
}

func (m *refModel) apply(idx uint64, e *logentry.Entry) []lease.Result {
	m.index = idx
	m.events = nil
	m.now = max(m.now, e.Time)
	for k, q := range m.queues {
		q = slices.DeleteFunc(q, func(w *mWaiter) bool { return w.expiry < m.now })
		if len(q) == 0 {
			delete(m.queues, k)
		} else {
			m.queues[k] = q
		}
	}
	var due []lease.Key
	for k, l := range m.leases {
		if l.expiry < m.now && len(m.pins[k]) == 0 {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b lease.Key) int {
		return cmp.Or(cmp.Compare(m.leases[a].expiry, m.leases[b].expiry), keyOrder(a, b))
	})
	for _, k := range due {
		m.release(k, lease.EventExpired)
	}
	switch e.Kind {
	case logentry.KindMember:
		if mem, err := logentry.DecodeMember(e.Payload); err == nil {
			m.members[mem.ID] = mem
		}
		return nil
	case logentry.KindSettings:
		m.settings = append([]byte(nil), e.Payload...)
		m.version++
		if l, bad := modelLimits(e.Payload); bad == "" {
			m.limits = l
		}
		return nil
	case logentry.KindSettingsChange:
		r := lease.Result{Now: m.now}
		l, bad := modelLimits(e.Payload)
		switch {
		case e.SettingsVersion != m.version:
			r.Code, r.Field = lease.CodeInvalidArgument, "settings_version"
		case bad != "":
			r.Code, r.Field = lease.CodeInvalidArgument, bad
		default:
			m.settings = append([]byte(nil), e.Payload...)
			m.version++
			m.limits = l
		}
		return []lease.Result{r}
	}
	if len(e.Commands) == 0 {
		return nil
	}
	var out []lease.Result
	for _, c := range e.Commands {
		out = append(out, m.command(c))
	}
	return out
}

func (m *refModel) emit(kind lease.EventKind, k lease.Key, l *mLease) {
	m.events = append(m.events, lease.Event{Kind: kind, Key: k, Holder: l.holder, Token: l.token, Expiry: l.expiry, Index: m.index, Now: m.now})
}

func (m *refModel) info(r *lease.Result, l *mLease) {
	r.Holder, r.Token, r.Start, r.Expiry = l.holder, l.token, l.start, l.expiry
}

func (m *refModel) release(k lease.Key, why lease.EventKind) {
	l := m.leases[k]
	delete(m.leases, k)
	m.emit(why, k, l)
	q := m.queues[k]
	for len(q) > 0 {
		w := q[0]
		q = q[1:]
		if w.expiry < m.now {
			continue
		}
		d := max(w.duration, m.limits.MinDuration)
		if d > m.limits.MaxDuration {
			d = m.limits.MaxDuration
		}
		m.grant(k, w.holder, d)
		break
	}
	if len(q) == 0 {
		delete(m.queues, k)
	} else {
		m.queues[k] = q
	}
}

func (m *refModel) grant(k lease.Key, holder string, d time.Duration) lease.Result {
	m.seq++
	l := &mLease{holder: holder, token: m.seq, start: m.now, expiry: m.now + d}
	m.leases[k] = l
	m.emit(lease.EventClaimed, k, l)
	r := lease.Result{Outcome: lease.OutcomeGranted, Now: m.now}
	m.info(&r, l)
	return r
}

func (m *refModel) lengthen(k lease.Key, l *mLease, d time.Duration) lease.Result {
	if d > m.limits.MaxDuration {
		d = m.limits.MaxDuration
	}
	if m.now+d > l.expiry {
		l.start, l.expiry = m.now, m.now+d
		m.emit(lease.EventExtended, k, l)
	}
	r := lease.Result{Outcome: lease.OutcomeExtended, Now: m.now}
	m.info(&r, l)
	return r
}

func (m *refModel) fits(d time.Duration) bool {
	return d >= m.limits.MinDuration && d <= m.limits.MaxDuration
}

func (m *refModel) command(c lease.Command) lease.Result {
	r := lease.Result{Now: m.now}
	hasDuration := c.Op == lease.OpClaim || c.Op == lease.OpExtend || c.Op == lease.OpQueueClaim
	switch {
	case c.Op < lease.OpClaim || c.Op > lease.OpCancelQueue:
		r.Code, r.Field = lease.CodeInvalidArgument, "op"
	case c.Holder == "" && (c.Op == lease.OpPin || c.Op == lease.OpUnpin):
		r.Code, r.Field = lease.CodeInvalidArgument, "entity"
	case c.Holder == "":
		r.Code, r.Field = lease.CodeInvalidArgument, "holder"
	case c.Op == lease.OpQueueClaim && (c.Wait <= 0 || c.Wait > 5*time.Minute):
		r.Code, r.Field = lease.CodeInvalidArgument, "wait"
	case hasDuration && (c.Duration < m.limits.MinDuration || c.Duration > 24*time.Hour):
		r.Code, r.Field = lease.CodeInvalidArgument, "duration"
	case c.Deadline < m.now:
		r.Code = lease.CodeDeadlineExceeded
	}
	if r.Code != lease.CodeOK {
		return r
	}
	l := m.leases[c.Key]
	mine := l != nil && l.holder == c.Holder
	switch c.Op {
	case lease.OpClaim:
		return m.claim(c, l, mine)
	case lease.OpExtend:
		if mine {
			return m.lengthen(c.Key, l, c.Duration)
		}
		r.Code = lease.CodeNotHeld
		if l != nil {
			m.info(&r, l)
		}
	case lease.OpRevoke:
		switch {
		case l == nil:
			r.Outcome = lease.OutcomeAbsent
		case !mine:
			r.Code = lease.CodeNotHeld
			m.info(&r, l)
		default:
			r.Outcome = lease.OutcomeRevoked
			m.info(&r, l)
			m.release(c.Key, lease.EventRevoked)
		}
	case lease.OpPin:
		r.Outcome = lease.OutcomePinned
		if !m.pins[c.Key][c.Holder] {
			if m.pins[c.Key] == nil {
				m.pins[c.Key] = map[string]bool{}
			}
			m.pins[c.Key][c.Holder] = true
			m.events = append(m.events, lease.Event{Kind: lease.EventPinned, Key: c.Key, Holder: c.Holder, Index: m.index, Now: m.now})
		}
	case lease.OpUnpin:
		r.Outcome = lease.OutcomeUnpinned
		if m.pins[c.Key][c.Holder] {
			delete(m.pins[c.Key], c.Holder)
			m.events = append(m.events, lease.Event{Kind: lease.EventUnpinned, Key: c.Key, Holder: c.Holder, Index: m.index, Now: m.now})
			if len(m.pins[c.Key]) == 0 {
				delete(m.pins, c.Key)
				// A lease kept past its expiry by pins expires with the last.
				if l != nil && l.expiry < m.now {
					m.release(c.Key, lease.EventExpired)
				}
			}
		}
	case lease.OpQueueClaim:
		if l == nil || mine {
			return m.claim(c, l, mine)
		}
		q := m.queues[c.Key]
		pos := slices.IndexFunc(q, func(w *mWaiter) bool { return w.holder == c.Holder })
		if pos < 0 {
			if !m.fits(c.Duration) {
				r.Code, r.Field = lease.CodeInvalidArgument, "duration"
				return r
			}
			q = append(q, &mWaiter{holder: c.Holder, duration: c.Duration, expiry: m.now + c.Wait})
			m.queues[c.Key] = q
			pos = len(q) - 1
		} else {
			q[pos].duration = c.Duration
			q[pos].expiry = max(q[pos].expiry, m.now+c.Wait)
		}
		r.Outcome, r.Position, r.WaitExpiry = lease.OutcomeQueued, pos+1, q[pos].expiry
		m.info(&r, l)
	case lease.OpCancelQueue:
		r.Outcome = lease.OutcomeAbsent
		q := m.queues[c.Key]
		if pos := slices.IndexFunc(q, func(w *mWaiter) bool { return w.holder == c.Holder }); pos >= 0 {
			q = slices.Delete(q, pos, pos+1)
			if len(q) == 0 {
				delete(m.queues, c.Key)
			} else {
				m.queues[c.Key] = q
			}
			r.Outcome = lease.OutcomeDequeued
		}
	}
	return r
}

// claim: the holder's renewal is clamped; anything else must fit the limits,
// then is denied (another holder) or granted.
func (m *refModel) claim(c lease.Command, l *mLease, mine bool) lease.Result {
	if mine {
		return m.lengthen(c.Key, l, c.Duration)
	}
	if !m.fits(c.Duration) {
		return lease.Result{Code: lease.CodeInvalidArgument, Field: "duration", Now: m.now}
	}
	if l != nil {
		r := lease.Result{Code: lease.CodeDenied, Now: m.now}
		m.info(&r, l)
		return r
	}
	return m.grant(c.Key, c.Holder, c.Duration)
}
