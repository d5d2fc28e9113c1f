package grpcserver

import "github.com/leasehold/leasehold/lease"

// eventLog is the hub's history: the kept events in fixed-size chunks.
// Appending never moves or rewrites a published event (a chunk is never
// reallocated or reused), and trimming drops whole chunks from the front
// once every event in them is gone, so the memory kept is the window plus
// at most one chunk and no publish ever copies the window. (The history was
// one slice of twice the window before: every window's worth of publishes
// allocated and zeroed a new one and copied the live window into it, about
// 2.5 events' worth of allocation per event kept and 8-10 % of the servers'
// CPU in a claim storm.)
//
// Readers take a view under the hub's lock and read it outside: a view has
// its own copy of the chunk list (a few dozen pointers), and the events it
// covers are never written again.
type eventLog struct {
	chunks [][]lease.Event // each of length size; the last is filled up to n+off
	off    int             // events of chunks[0] already dropped
	n      int             // events kept
	size   int             // events per chunk
}

func newEventLog(window int) eventLog {
	return eventLog{size: min(max(window/16, 64), 4096)}
}

// eventView is a read-only view of kept events, index 0 the oldest.
type eventView struct {
	chunks [][]lease.Event
	off, n int
	size   int
}

func (v *eventView) len() int { return v.n }

func (v *eventView) at(i int) *lease.Event {
	i += v.off
	return &v.chunks[i/v.size][i%v.size]
}

// at returns the i-th kept event; under the hub's lock.
func (l *eventLog) at(i int) *lease.Event {
	i += l.off
	return &l.chunks[i/l.size][i%l.size]
}

// view returns the kept events from the i-th on; under the hub's lock.
func (l *eventLog) view(i int) eventView {
	i += l.off
	first := i / l.size
	return eventView{chunks: append([][]lease.Event(nil), l.chunks[first:]...), off: i - first*l.size, n: l.n - (i - l.off), size: l.size}
}

// append adds evs after the kept events.
func (l *eventLog) append(evs []lease.Event) {
	for len(evs) > 0 {
		pos := l.off + l.n
		if pos == len(l.chunks)*l.size {
			l.chunks = append(l.chunks, make([]lease.Event, l.size))
		}
		c := pos / l.size
		m := copy(l.chunks[c][pos-c*l.size:], evs)
		evs = evs[m:]
		l.n += m
	}
}

// drop forgets the k oldest events, freeing the chunks left empty.
func (l *eventLog) drop(k int) {
	l.off += k
	l.n -= k
	for l.off >= l.size {
		l.chunks[0] = nil // readers have their own chunk lists
		l.chunks = l.chunks[1:]
		l.off -= l.size
	}
	if l.n == 0 && len(l.chunks) == 0 {
		l.off = 0
	}
}

// reset forgets every event (readers keep what they hold).
func (l *eventLog) reset() {
	l.chunks, l.off, l.n = nil, 0, 0
}
