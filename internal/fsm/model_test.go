package fsm

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/logentry"
	"github.com/leasehold/leasehold/lease"
	"pgregory.net/rapid"
)

// The model-based test of the state machine (issue 12). Random sequences of
// every kind of entry (claims, extends, revokes, pins and unpins, queued
// claims and cancels, settings changes, legacy settings entries, member
// directory entries, ticks) on a coarse time grid, so leases and claimants
// often fall due at one instant, are applied through the log codec to
//   - the live machine,
//   - a twin, replaced at random points by a machine restored from the live
//     one's snapshot (as a replica that installs a snapshot), and
//   - the reference model (model_ref_test.go).
// After every entry the live machine and the twin must give identical
// results and events and byte-identical snapshots, and both must agree with
// the model on every result, every event (in order) and the whole state.
//
// TestModel runs a small size in `go test ./fsm`; LEASEHOLD_MODEL_LONG=1
// runs TestModelLong, many more and longer sequences, in CI.

var (
	modelKeys     = []lease.Key{kA, kB, kC, kS}
	modelHolders  = []string{"u/0", "u/1", "u/2"}
	modelEntities = []string{"m/0", "m/1"}
)

const grid = 500 * time.Millisecond

func gridDurations(t *rapid.T, label string, ds ...time.Duration) time.Duration {
	return rapid.SampledFrom(ds).Draw(t, label)
}

func genModelEntry(t *rapid.T, ref *refModel) logentry.Entry {
	at := ref.now + time.Duration(rapid.IntRange(-2, 8).Draw(t, "dt"))*grid
	if rapid.IntRange(0, 9).Draw(t, "offGrid") == 0 {
		at += time.Duration(rapid.SampledFrom([]int{1, -1}).Draw(t, "ns"))
	}
	// Batches first: rapid leans towards the first choices.
	switch rapid.SampledFrom([]string{"batch", "batch", "batch", "batch", "batch", "batch", "batch", "batch",
		"tick", "tick", "tick", "settings", "legacy", "member"}).Draw(t, "kind") {
	case "member": // a server's addresses in the member directory
		mem := logentry.Member{ID: rapid.SampledFrom([]string{"s1", "s2"}).Draw(t, "memberID"),
			ClientAddr: rapid.SampledFrom([]string{"10.0.0.1:7000", "10.0.0.2:7000"}).Draw(t, "memberAddr")}
		return logentry.Entry{Kind: logentry.KindMember, Time: at, Payload: logentry.EncodeMember(mem)}
	case "settings": // a settings change, mostly from the current version
		l := lease.Limits{
			MinDuration: gridDurations(t, "minDur", 500*time.Millisecond, time.Second, 2*time.Second),
			MaxDuration: gridDurations(t, "maxDur", 5*time.Minute, time.Minute, 10*time.Second, 5*time.Second, 2*time.Second),
		}
		basedOn := ref.version + uint64(rapid.SampledFrom([]int{0, 0, 0, 0, -1, 1}).Draw(t, "basedOn"))
		payload := settingsPayload(l)
		if rapid.IntRange(0, 7).Draw(t, "garbage") == 0 {
			payload = []byte{9, 1}
		}
		return logentry.Entry{Kind: logentry.KindSettingsChange, Time: at, SettingsVersion: basedOn, Payload: payload}
	case "legacy": // an old build's settings entry
		if rapid.IntRange(0, 3).Draw(t, "legacy") == 0 {
			p := settingsPayload(lease.Limits{MinDuration: time.Second, MaxDuration: gridDurations(t, "legacyMax", time.Minute, 3*time.Second)})
			if rapid.Bool().Draw(t, "legacyGarbage") {
				p = []byte{42}
			}
			return logentry.Entry{Kind: logentry.KindSettings, Time: at, Payload: p}
		}
		return logentry.Entry{Kind: logentry.KindBatch, Time: at}
	case "tick":
		return logentry.Entry{Kind: logentry.KindBatch, Time: at}
	}
	e := logentry.Entry{Kind: logentry.KindBatch, Time: at}
	for range rapid.IntRange(1, 5).Draw(t, "n") {
		op := rapid.SampledFrom([]lease.Op{lease.OpClaim, lease.OpClaim, lease.OpClaim, lease.OpExtend, lease.OpExtend,
			lease.OpRevoke, lease.OpPin, lease.OpUnpin, lease.OpQueueClaim, lease.OpQueueClaim, lease.OpQueueClaim,
			lease.OpCancelQueue}).Draw(t, "op")
		c := lease.Command{Op: op, Key: rapid.SampledFrom(modelKeys).Draw(t, "key"), Deadline: farAway}
		if op == lease.OpPin || op == lease.OpUnpin {
			c.Holder = rapid.SampledFrom(modelEntities).Draw(t, "entity")
		} else {
			c.Holder = rapid.SampledFrom(modelHolders).Draw(t, "holder")
		}
		if op == lease.OpClaim || op == lease.OpExtend || op == lease.OpQueueClaim {
			c.Duration = gridDurations(t, "dur", time.Second, 1500*time.Millisecond, 2*time.Second, 3*time.Second,
				5*time.Second, 10*time.Second, 500*time.Millisecond, 6*time.Minute, 25*time.Hour)
		}
		if op == lease.OpQueueClaim {
			c.Wait = gridDurations(t, "wait", time.Second, 2*time.Second, 5*time.Second, 10*time.Second, 0, 6*time.Minute)
		}
		if rapid.IntRange(0, 39).Draw(t, "noHolder") == 0 {
			c.Holder = ""
		}
		if rapid.IntRange(0, 5).Draw(t, "hasDeadline") == 0 {
			c.Deadline = at + time.Duration(rapid.IntRange(-2, 2).Draw(t, "deadline"))*grid
		}
		e.Commands = append(e.Commands, c)
	}
	return e
}

func describeEntry(e *logentry.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind %d at %v", e.Kind, e.Time)
	if e.Kind != logentry.KindBatch {
		fmt.Fprintf(&b, " based on version %d payload %x", e.SettingsVersion, e.Payload)
	}
	for i, c := range e.Commands {
		fmt.Fprintf(&b, "\n  cmd %d: %v %v holder %q duration %v wait %v deadline %v", i, c.Op, c.Key, c.Holder, c.Duration, c.Wait, c.Deadline)
	}
	return b.String()
}

// modelStats counts what the runs exercised, so a run that stops reaching
// the interesting cases (ties, queued grants, restores) shows it.
type modelStats struct {
	entries, restores, tiedExpiries, queuedGrants, settingsAccepted, settingsRefused, clamped int
}

func (s *modelStats) count(e *logentry.Entry, res []lease.Result, ev []lease.Event) {
	s.entries++
	expired := 0
	for i, x := range ev {
		if x.Kind == lease.EventExpired || x.Kind == lease.EventRevoked {
			expired += btoi(x.Kind == lease.EventExpired)
			if i+1 < len(ev) && ev[i+1].Kind == lease.EventClaimed && ev[i+1].Key == x.Key {
				s.queuedGrants++
			}
		}
	}
	if expired > 1 {
		s.tiedExpiries++
	}
	if e.Kind == logentry.KindSettingsChange {
		if res[0].Code == lease.CodeOK {
			s.settingsAccepted++
		} else {
			s.settingsRefused++
		}
	}
	for i, r := range res {
		if e.Kind == logentry.KindBatch && r.Code == lease.CodeOK && r.Outcome == lease.OutcomeExtended &&
			r.Expiry-r.Start < e.Commands[i].Duration && r.Start == r.Now {
			s.clamped++
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func runModel(t *rapid.T, maxSteps int) { runModelStats(t, maxSteps, &modelStats{}) }

func runModelStats(t *rapid.T, maxSteps int, stats *modelStats) {
	live, twin := New(), New()
	live.RecordEvents(true)
	twin.RecordEvents(true)
	ref := newRefModel()
	restoredAt := uint64(0)
	steps := rapid.IntRange(1, maxSteps).Draw(t, "steps")
	for idx := uint64(1); idx <= uint64(steps); idx++ {
		gen := genModelEntry(t, ref)
		e, err := logentry.Decode(gen.Marshal())
		if err != nil {
			t.Fatalf("codec: %v", err)
		}
		got := live.Apply(idx, &e)
		tgot := twin.Apply(idx, &e)
		want := ref.apply(idx, &e)
		where := func() string {
			return fmt.Sprintf("entry %d (twin restored at %d): %s", idx, restoredAt, describeEntry(&e))
		}
		if len(got) != len(want) {
			t.Fatalf("%s\n%d results, model %d", where(), len(got), len(want))
		}
		for i := range got {
			g := got[i]
			g.Message = "" // the model does not word messages
			if g != want[i] {
				t.Fatalf("%s\nresult %d:\n  got   %+v\n  model %+v", where(), i, got[i], want[i])
			}
		}
		if fmt.Sprint(tgot) != fmt.Sprint(got) {
			t.Fatalf("%s\nlive and restored twin results differ:\n  live %+v\n  twin %+v", where(), got, tgot)
		}
		ev, tev := live.TakeEvents(), twin.TakeEvents()
		if !slices.Equal(ev, ref.events) {
			t.Fatalf("%s\nevents:\n  got   %+v\n  model %+v", where(), ev, ref.events)
		}
		if !slices.Equal(ev, tev) {
			t.Fatalf("%s\nlive and restored twin events differ:\n  live %+v\n  twin %+v", where(), ev, tev)
		}
		stats.count(&e, got, ev)
		snap := live.AppendSnapshot(nil)
		if !bytes.Equal(snap, twin.AppendSnapshot(nil)) {
			t.Fatalf("%s\nlive and restored twin snapshots differ", where())
		}
		compareWithModel(t, live, ref, where)
		checkHeap(t, live)
		checkHeap(t, twin)
		if rapid.IntRange(0, 3).Draw(t, "restore") == 0 {
			twin = New()
			twin.RecordEvents(true)
			if err := twin.Restore(snap); err != nil {
				t.Fatalf("%s\nrestore: %v", where(), err)
			}
			if !bytes.Equal(snap, twin.AppendSnapshot(nil)) {
				t.Fatalf("%s\nsnapshot -> restore -> snapshot differs", where())
			}
			checkHeap(t, twin)
			restoredAt = idx
			stats.restores++
		}
	}
}

// compareWithModel checks the machine's whole observable state.
func compareWithModel(t *rapid.T, m *Machine, ref *refModel, where func() string) {
	if m.Now() != ref.now || m.Index() != ref.index {
		t.Fatalf("%s\nnow %v index %d, model %v %d", where(), m.Now(), m.Index(), ref.now, ref.index)
	}
	if m.Limits() != ref.limits || m.SettingsVersion() != ref.version || !bytes.Equal(m.Settings(), ref.settings) {
		t.Fatalf("%s\nsettings %v version %d %x, model %v %d %x", where(), m.Limits(), m.SettingsVersion(), m.Settings(),
			ref.limits, ref.version, ref.settings)
	}
	list := m.List("", "", lease.Key{}, 0, 0)
	if len(list) != len(ref.leases) || m.Len() != len(ref.leases) {
		t.Fatalf("%s\n%d leases listed (Len %d), model %d", where(), len(list), m.Len(), len(ref.leases))
	}
	for _, in := range list {
		l := ref.leases[in.Key]
		if l == nil || in.Holder != l.holder || in.Token != l.token || in.Start != l.start || in.Expiry != l.expiry ||
			in.Pinned != (len(ref.pins[in.Key]) > 0) {
			t.Fatalf("%s\nlease %+v, model %+v", where(), in, l)
		}
	}
	var members []logentry.Member
	for _, id := range slices.Sorted(maps.Keys(ref.members)) {
		members = append(members, ref.members[id])
	}
	if got := m.Members(); !slices.Equal(got, members) {
		t.Fatalf("%s\nmembers %v, model %v", where(), got, members)
	}
	pins := m.Pinned()
	if len(pins) != len(ref.pins) {
		t.Fatalf("%s\npins %v, model %v", where(), pins, ref.pins)
	}
	for k, es := range pins {
		if !slices.Equal(es, slices.Sorted(maps.Keys(ref.pins[k]))) {
			t.Fatalf("%s\npins of %v: %v, model %v", where(), k, es, ref.pins[k])
		}
	}
	queued := 0
	for _, k := range modelKeys {
		var want []string
		for _, w := range ref.queues[k] {
			want = append(want, w.holder)
		}
		queued += len(want)
		if got := m.Queued(k); !slices.Equal(got, want) {
			t.Fatalf("%s\nqueue of %v: %v, model %v", where(), k, got, want)
		}
	}
	if m.QueueLen() != queued {
		t.Fatalf("%s\nQueueLen %d, model %d", where(), m.QueueLen(), queued)
	}
}

func TestModel(t *testing.T) {
	var stats modelStats
	rapid.Check(t, func(t *rapid.T) { runModelStats(t, 60, &stats) })
	t.Logf("%+v", stats)
}

// TestModelLong is the large run CI makes: LEASEHOLD_MODEL_LONG=1 go test
// ./fsm -run TestModelLong. LEASEHOLD_MODEL_ROUNDS (default 100) rounds of
// rapid's checks, each sequence up to 400 entries.
func TestModelLong(t *testing.T) {
	if os.Getenv("LEASEHOLD_MODEL_LONG") != "1" {
		t.Skip("set LEASEHOLD_MODEL_LONG=1 for the long model-based run")
	}
	rounds := 100
	if n, err := fmt.Sscan(os.Getenv("LEASEHOLD_MODEL_ROUNDS"), &rounds); n != 1 || err != nil {
		rounds = 100
	}
	var stats modelStats
	for i := range rounds {
		t.Run(fmt.Sprint("round", i), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) { runModelStats(t, 400, &stats) })
		})
	}
	t.Logf("%+v", stats)
}
