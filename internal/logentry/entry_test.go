package logentry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/leasehold/leasehold/lease"
)

func key(ns, g, n string) lease.Key { return lease.Key{Namespace: ns, Group: g, Name: n} }

// normalize returns what Decode(Marshal(e)) should give: durations only on
// claim/extend, no commands on payload kinds, no payload on batches, empty
// slices as nil.
func normalize(e Entry) Entry {
	out := Entry{Kind: e.Kind, Time: e.Time}
	switch e.Kind {
	case KindSettings, KindMember, KindSettingsChange:
		if e.Kind == KindSettingsChange {
			out.SettingsVersion = e.SettingsVersion
		}
		if len(e.Payload) > 0 {
			out.Payload = append([]byte(nil), e.Payload...)
		}
	default:
		for _, c := range e.Commands {
			if c.Op != lease.OpClaim && c.Op != lease.OpExtend && c.Op != lease.OpQueueClaim {
				c.Duration = 0
			}
			if c.Op != lease.OpQueueClaim {
				c.Wait = 0
			}
			out.Commands = append(out.Commands, c)
		}
	}
	return out
}

func sampleEntries() map[string]Entry {
	k1, k2, k3 := key("app-leadership", "model-1", "mysql"), key("app-leadership", "model-1", "wordpress"), key("singular", "ctrl", "c")
	return map[string]Entry{
		"tick":         {Kind: KindBatch, Time: 42 * time.Second},
		"tick at zero": {Kind: KindBatch},
		"negative time": {Kind: KindBatch, Time: -time.Hour, Commands: []lease.Command{
			{Op: lease.OpClaim, Key: k1, Holder: "u/0", Duration: time.Minute, Deadline: -time.Hour + time.Second}}},
		"mixed batch": {Kind: KindBatch, Time: time.Hour, Commands: []lease.Command{
			{Op: lease.OpClaim, Key: k1, Holder: "mysql/0", Duration: time.Minute, Deadline: time.Hour + 3*time.Second},
			{Op: lease.OpExtend, Key: k2, Holder: "wordpress/1", Duration: 30 * time.Second, Deadline: time.Hour + 5*time.Second},
			{Op: lease.OpRevoke, Key: k3, Holder: "machine-0", Deadline: time.Hour},
			{Op: lease.OpPin, Key: k3, Holder: "machine-1", Deadline: time.Hour - time.Second}, // deadline already past
			{Op: lease.OpUnpin, Key: k1, Holder: "machine-1", Deadline: 1<<62 + 7},
		}},
		"queued claims": {Kind: KindBatch, Time: time.Minute, Commands: []lease.Command{
			{Op: lease.OpQueueClaim, Key: k1, Holder: "mysql/1", Duration: time.Minute, Wait: 20 * time.Second, Deadline: time.Minute + time.Second},
			{Op: lease.OpCancelQueue, Key: k1, Holder: "mysql/2", Deadline: time.Minute + time.Second},
		}},
		"settings":                       {Kind: KindSettings, Time: 7, Payload: []byte(`{"min":"1s"}`)},
		"empty settings":                 {Kind: KindSettings, Time: 7},
		"settings change":                {Kind: KindSettingsChange, Time: 8, SettingsVersion: 1<<40 + 3, Payload: []byte{1, 2, 3}},
		"settings change from version 0": {Kind: KindSettingsChange, Time: 8, Payload: []byte{1}},
		"member":                         {Kind: KindMember, Time: 9, Payload: EncodeMember(Member{ID: "s1", ClientAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080"})},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, e := range sampleEntries() {
		b := e.Marshal()
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if want := normalize(e); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, want)
		}
		if b2 := got.Marshal(); !bytes.Equal(b, b2) {
			t.Errorf("%s: re-encoding differs", name)
		}
		// Append onto a prefix leaves the prefix alone and encodes the same bytes.
		pre := []byte("prefix")
		if ab := e.Append(pre); !bytes.HasPrefix(ab, []byte("prefix")) || !bytes.Equal(ab[6:], b) {
			t.Errorf("%s: Append differs from Marshal", name)
		}
	}
}

func TestDurationDroppedForNonLeaseOps(t *testing.T) {
	e := Entry{Kind: KindBatch, Time: 5, Commands: []lease.Command{
		{Op: lease.OpRevoke, Key: key("a", "b", "c"), Holder: "h", Duration: time.Minute, Deadline: 6}}}
	got, err := Decode(e.Marshal())
	if err != nil || got.Commands[0].Duration != 0 {
		t.Fatalf("revoke duration should not travel: %+v, %v", got, err)
	}
}

func TestSameGroupSharing(t *testing.T) {
	cmds := make([]lease.Command, 100)
	for i := range cmds {
		cmds[i] = lease.Command{Op: lease.OpExtend, Key: key("application-leadership", "0123456789abcdef0123456789abcdef", fmt.Sprint("app-", i)),
			Holder: fmt.Sprint("app-", i, "/0"), Duration: time.Minute, Deadline: 3 * time.Second}
	}
	shared := Entry{Kind: KindBatch, Commands: cmds}
	// Alternate groups so nothing can be shared.
	alt := make([]lease.Command, len(cmds))
	copy(alt, cmds)
	for i := 1; i < len(alt); i += 2 {
		alt[i].Key.Group = "other"
	}
	b1, b2 := shared.Marshal(), (&Entry{Kind: KindBatch, Commands: alt}).Marshal()
	perGroup := len("application-leadership") + 32
	if len(b2)-len(b1) < 49*perGroup {
		t.Errorf("same-group commands do not share namespace/group: %d vs %d bytes", len(b1), len(b2))
	}
	got, err := Decode(b1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Commands, cmds) {
		t.Fatal("round trip of a shared-group batch differs")
	}
	// Decoded strings share storage within a group and do not alias the input.
	if unsafe.StringData(got.Commands[0].Key.Group) != unsafe.StringData(got.Commands[99].Key.Group) {
		t.Error("consecutive same-group commands should share one copy of the group string")
	}
	in := unsafe.SliceData(b1)
	for _, s := range []string{got.Commands[0].Key.Namespace, got.Commands[5].Key.Name, got.Commands[5].Holder} {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		if p >= uintptr(unsafe.Pointer(in)) && p < uintptr(unsafe.Pointer(in))+uintptr(len(b1)) {
			t.Errorf("decoded string %q aliases the input buffer", s)
		}
	}
}

func TestCommandSizeIsUpperBound(t *testing.T) {
	long := strings.Repeat("x", 256)
	cases := []lease.Command{
		{Op: lease.OpClaim, Key: key("a", "b", "c"), Holder: "h", Duration: time.Minute, Deadline: 1<<63 - 1},
		{Op: lease.OpExtend, Key: key(long, long, long), Holder: long, Duration: -1 << 63, Deadline: -1 << 63},
		{Op: lease.OpUnpin, Key: key(long, "g", long), Holder: long},
	}
	for i, c := range cases {
		for _, tm := range []time.Duration{0, 1<<63 - 1, -1 << 63} {
			e := Entry{Kind: KindBatch, Time: tm, Commands: []lease.Command{c}}
			body := len(e.Marshal()) - len((&Entry{Kind: KindBatch, Time: tm}).Marshal())
			if body > CommandSize(&c) {
				t.Errorf("case %d time %v: encoded %d bytes > CommandSize %d", i, tm, body, CommandSize(&c))
			}
		}
	}
}

func TestDeadlineExtremes(t *testing.T) {
	// Deadline is stored relative to Time; the difference may overflow and must still round trip.
	for _, tm := range []time.Duration{-1 << 63, -1, 0, 1, 1<<63 - 1} {
		for _, dl := range []time.Duration{-1 << 63, 0, 1<<63 - 1} {
			e := Entry{Kind: KindBatch, Time: tm, Commands: []lease.Command{{Op: lease.OpPin, Key: key("a", "b", "c"), Holder: "e", Deadline: dl}}}
			got, err := Decode(e.Marshal())
			if err != nil || got.Time != tm || got.Commands[0].Deadline != dl {
				t.Errorf("time %d deadline %d: got %+v, %v", tm, dl, got, err)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := sampleEntries()["mixed batch"]
	vb := valid.Marshal()
	cmdStart := 2 + binary.PutVarint(make([]byte, 10), int64(valid.Time)) + 1 // version, kind, time, count
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), vb...)) }
	tests := map[string][]byte{
		"nil":                   nil,
		"one byte":              {Version},
		"version 0":             {0, byte(KindBatch), 0, 0},
		"version 2":             {2, byte(KindBatch), 0, 0},
		"kind 0":                {Version, 0, 0, 0},
		"kind 4":                {Version, 4, 0, 0},
		"missing time":          {Version, byte(KindBatch)},
		"missing count":         {Version, byte(KindBatch), 0},
		"overlong varint time":  append([]byte{Version, byte(KindBatch)}, bytes.Repeat([]byte{0xff}, 11)...),
		"trailing bytes":        mutate(func(b []byte) []byte { return append(b, 0) }),
		"count too big":         {Version, byte(KindBatch), 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"count beyond input":    {Version, byte(KindBatch), 0, 2, byte(lease.OpPin), 1, 'a', 1, 'b', 1, 'c', 1, 'e', 0},
		"payload beyond input":  {Version, byte(KindSettings), 0, 5, 'a'},
		"payload length huge":   {Version, byte(KindSettings), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"op 0":                  mutate(func(b []byte) []byte { b[cmdStart] = 0; return b }),
		"op 6":                  mutate(func(b []byte) []byte { b[cmdStart] = 6; return b }),
		"reserved header bits":  mutate(func(b []byte) []byte { b[cmdStart] |= 0x10; return b }),
		"first refers to group": mutate(func(b []byte) []byte { b[cmdStart] |= sameGroupFlag; return b }),
		"string length huge":    {Version, byte(KindBatch), 0, 1, byte(lease.OpPin), 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0},
	}
	// Every strict prefix of a valid entry is corrupt.
	for _, e := range sampleEntries() {
		b := e.Marshal()
		for i := 0; i < len(b); i++ {
			tests[fmt.Sprintf("%v prefix %d of %d", e.Kind, i, len(b))] = b[:i]
		}
	}
	for name, b := range tests {
		e, err := Decode(b)
		if err == nil {
			t.Errorf("%s: decoded %+v", name, e)
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v does not wrap ErrCorrupt", name, err)
		}
		if !reflect.DeepEqual(e, Entry{}) {
			t.Errorf("%s: non-zero entry returned with error", name)
		}
	}
	if _, err := Decode([]byte{2, 1, 0, 0}); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("unknown version error should name the version: %v", err)
	}
}

func TestPayloadNotAliased(t *testing.T) {
	e := Entry{Kind: KindSettings, Payload: []byte("abc")}
	b := e.Marshal()
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'z'
	if string(got.Payload) != "abc" {
		t.Fatal("decoded payload aliases the input")
	}
}

func TestMemberRoundTrip(t *testing.T) {
	for _, m := range []Member{
		{ID: "s1", ClientAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080"},
		{ID: "only-id"},
		{ID: strings.Repeat("i", 300), ClientAddr: "[::1]:1", HTTPAddr: "\x00\xff"},
	} {
		got, err := DecodeMember(EncodeMember(m))
		if err != nil || got != m {
			t.Errorf("DecodeMember(EncodeMember(%+v)) = %+v, %v", m, got, err)
		}
	}
	good := EncodeMember(Member{ID: "s1", ClientAddr: "a", HTTPAddr: "b"})
	bad := map[string][]byte{
		"empty":     nil,
		"no id":     EncodeMember(Member{ClientAddr: "a"}),
		"trailing":  append(append([]byte(nil), good...), 0),
		"truncated": good[:len(good)-1],
		"huge len":  {0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, p := range bad {
		if _, err := DecodeMember(p); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeMember error %v", name, err)
		}
	}
}
