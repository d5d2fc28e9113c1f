package blackbox

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	shortKeys = []string{"bb/k/k1", "bb/k/k2", "bb/k/k3", "bb/k/k4", "bb/k/k5", "bb/k/k6", "bb/k/k7"}
	// Long keys are claimed for minutes, around the servers' differing
	// --max-duration: 4m is valid on every server, 5m30s on servers 1 and 3,
	// 7m on server 1 only (issue 12: a claim valid on one server only).
	longKeys      = []string{"bb/long/l1", "bb/long/l2"}
	longDurations = []time.Duration{4 * time.Minute, 5*time.Minute + 30*time.Second, 7 * time.Minute}
)

// Each server starts with different limits and tick; restarts swap in the
// alternative flags and back. Small snapshot settings make restarted
// followers catch up from a snapshot.
var (
	common    = []string{"--snapshot-threshold", "64", "--snapshot-interval", "1s", "--trailing-logs", "32"}
	baseFlags = [3][]string{
		{"--max-duration", "10m", "--min-duration", "1s", "--tick", "250ms"},
		{"--max-duration", "5m", "--min-duration", "500ms", "--tick", "100ms"},
		{"--max-duration", "6m", "--min-duration", "1s", "--tick", "400ms"},
	}
	altFlags = [3][]string{
		{"--max-duration", "5m", "--min-duration", "1500ms", "--tick", "1s"},
		{"--max-duration", "10m", "--min-duration", "1s", "--tick", "50ms"},
		{"--max-duration", "2m", "--min-duration", "500ms", "--tick", "500ms"},
	}
)

type bbConfig struct {
	run     time.Duration // workload and faults
	agents  int
	waiters int
}

func TestBlackBox(t *testing.T) {
	if testing.Short() {
		t.Skip("black-box run: starts three server processes for about a minute")
	}
	cfg := bbConfig{run: 40 * time.Second, agents: 4, waiters: 2}
	if os.Getenv("LEASEHOLD_BLACKBOX_LONG") != "" {
		cfg.run = 6 * time.Minute
	}
	if d, err := time.ParseDuration(os.Getenv("LEASEHOLD_BLACKBOX_DURATION")); err == nil {
		cfg.run = d
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, run %v", seed, cfg.run)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	var flags [3][]string
	for i := range flags {
		flags[i] = append(append([]string{}, baseFlags[i]...), common...)
	}
	c := startCluster(t, bin, dir, flags)
	b := &bb{t: t, c: c, bin: bin, h: newHistory(), eps: c.endpoints()}
	if !b.waitLeader(60 * time.Second) {
		t.Fatalf("no leader after 60s\n%s", c.logTails(20))
	}

	stop := time.Now().Add(cfg.run)
	var wg sync.WaitGroup
	for i := range cfg.agents {
		wg.Go(func() { b.agent(fmt.Sprintf("a%d", i+1), rand.New(rand.NewPCG(seed, uint64(i))), stop) })
	}
	for i := range cfg.waiters {
		wg.Go(func() { b.waiter(fmt.Sprintf("w%d", i+1), rand.New(rand.NewPCG(seed, uint64(100+i))), stop) })
	}
	wg.Go(func() {
		for time.Now().Before(stop) {
			b.pollReplicas()
			time.Sleep(200 * time.Millisecond)
		}
	})
	wg.Go(func() { b.faults(rand.New(rand.NewPCG(seed, 999)), stop) })
	wg.Wait()

	// Faults over: every server up and running, then compare the replicas
	// until each pair has been compared at an equal applied index again.
	for _, s := range c.servers {
		c.pause(s, false)
		c.start(s)
	}
	if !b.waitLeader(60 * time.Second) {
		t.Errorf("no leader 60s after the faults stopped")
	}
	before := b.comparedPairs()
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); {
		b.pollReplicas()
		if after := b.comparedPairs(); after.allGrewFrom(before) {
			break
		}
	}
	if after := b.comparedPairs(); !after.allGrewFrom(before) {
		t.Errorf("could not catch every pair of replicas at one applied index after the faults (compared %v before, %v after)", before, after)
	}
	b.h.checkTenures()
	if path := os.Getenv("LEASEHOLD_BLACKBOX_TRACE"); path != "" {
		if err := b.h.trace(path); err != nil {
			t.Errorf("trace: %v", err)
		}
		t.Logf("every call written to %s", path)
	}
	t.Log(b.h.summary())
	t.Logf("faults: %s", strings.Join(b.faultLog, ", "))
	if len(b.h.violations) > 0 {
		for _, v := range b.h.report(4) {
			t.Errorf("%s", v)
		}
		t.Logf("server logs:\n%s", c.logTails(15))
	}
}

type bb struct {
	t        *testing.T
	c        *procCluster
	bin      string
	eps      string
	h        *history
	fmu      sync.Mutex
	faultLog []string
}

// cli runs a client command with --json against eps.
func (b *bb) cli(limit time.Duration, eps string, args ...string) *call {
	return runCLI(b.bin, limit, append(args, "--json", "--endpoints", eps, "--timeout", "3s")...)
}

// shuffled is the endpoint list in a random order, so calls start on any server.
func (b *bb) shuffled(r *rand.Rand) string {
	eps := strings.Split(b.eps, ",")
	r.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
	return strings.Join(eps, ",")
}

// agent claims, extends and revokes keys as holder until stop.
func (b *bb) agent(holder string, r *rand.Rand, stop time.Time) {
	held := map[string]time.Time{} // key -> when this holder's belief ends
	for time.Now().Before(stop) {
		key := shortKeys[r.IntN(len(shortKeys))]
		d := time.Duration(1500+r.IntN(3500)) * time.Millisecond
		long := r.IntN(8) == 0
		if long {
			key, d = longKeys[r.IntN(len(longKeys))], longDurations[r.IntN(len(longDurations))]
		}
		op := "claim"
		if r.IntN(6) == 0 {
			op = "get"
		} else if until, ok := held[key]; ok && time.Until(until) > 200*time.Millisecond {
			switch x := r.IntN(10); {
			case long && x < 7, !long && x < 3:
				op = "revoke"
			case x < 8:
				op = "extend"
			}
		}
		if op == "get" {
			c := b.cli(30*time.Second, b.shuffled(r), "get", key)
			if code, ok := b.h.exit("get", c); ok && code == "" {
				b.h.read(key, c)
			}
			continue
		}
		args := []string{op, key, holder}
		if op != "revoke" {
			args = append(args, "--duration", d.String())
		}
		c := b.cli(30*time.Second, b.shuffled(r), args...)
		code, ok := b.h.exit(op, c)
		if ok {
			b.h.write(op, key, holder, c, code, false)
		}
		switch {
		case op == "revoke" && (code == "" || code == "unknown" || code == "canceled"):
			delete(held, key)
		case ok && code == "":
			var w writeOut
			if json.Unmarshal([]byte(c.stdout), &w) == nil {
				held[key] = c.start.Add(time.Duration(w.ExpiresInMs) * time.Millisecond)
			}
		}
		time.Sleep(time.Duration(r.IntN(200)) * time.Millisecond)
	}
}

// waiter queues for a key with wait --claim, holds what it is granted for a
// while, then revokes it.
func (b *bb) waiter(holder string, r *rand.Rand, stop time.Time) {
	for time.Now().Before(stop) {
		key := shortKeys[r.IntN(len(shortKeys))]
		d := time.Duration(2000+r.IntN(3000)) * time.Millisecond
		maxWait := min(8*time.Second, time.Until(stop)+time.Second)
		if r.IntN(4) == 0 {
			// A plain wait must not report a release while a belief
			// covers the whole call.
			c := b.cli(maxWait+30*time.Second, b.shuffled(r), "wait", key, "--max-wait", maxWait.String())
			if code, ok := b.h.exit("wait-release", c); ok && code == "" {
				b.h.released(key, c)
			}
			continue
		}
		c := b.cli(maxWait+30*time.Second, b.shuffled(r), "wait", key, "--claim", holder, "--duration", d.String(), "--max-wait", maxWait.String())
		code, ok := b.h.exit("wait", c)
		if ok {
			b.h.write("wait", key, holder, c, code, true)
		}
		if !ok || code != "" {
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
			continue
		}
		var w writeOut
		_ = json.Unmarshal([]byte(c.stdout), &w)
		time.Sleep(time.Duration(r.Int64N(int64(w.ExpiresInMs)/2+1)) * time.Millisecond)
		for range 3 { // a revoke that was not applied leaves the belief: try again
			rc := b.cli(30*time.Second, b.shuffled(r), "revoke", key, holder)
			code, ok := b.h.exit("revoke", rc)
			if ok {
				b.h.write("revoke", key, holder, rc, code, false)
			}
			if code == "" || code == "unknown" || code == "not_held" {
				break
			}
		}
	}
}

// pollReplicas reads every running server's leases with a stale list, at once.
func (b *bb) pollReplicas() {
	var wg sync.WaitGroup
	for _, s := range b.c.servers {
		if !b.c.running(s) {
			continue
		}
		wg.Go(func() {
			c := runCLI(b.bin, 30*time.Second, "list", "--stale", "--json", "--endpoints", s.client, "--timeout", "2s")
			code, ok := b.h.exit("list", c)
			if !ok || code != "" {
				return
			}
			var l listOut
			if err := json.Unmarshal([]byte(c.stdout), &l); err != nil {
				b.h.mu.Lock()
				b.h.violatef("output", "bad list JSON: %v: %s", err, c)
				b.h.mu.Unlock()
				return
			}
			if l.ServerID != s.id {
				b.h.mu.Lock()
				b.h.violatef("output", "stale list sent to server %s answered by %q", s.id, l.ServerID)
				b.h.mu.Unlock()
				return
			}
			b.h.replica(s.id, &l)
		})
	}
	wg.Wait()
}

type pairCounts map[string]int

func (b *bb) comparedPairs() pairCounts {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	out := pairCounts{}
	for k, v := range b.h.comparisons {
		out[k] = v
	}
	return out
}

func (p pairCounts) allGrewFrom(before pairCounts) bool {
	for _, pair := range []string{"1-2", "1-3", "2-3"} {
		if p[pair] <= before[pair] {
			return false
		}
	}
	return true
}

// leader asks the cluster (through the CLI) who leads; "" if nobody does.
func (b *bb) leader() string {
	c := b.cli(30*time.Second, b.eps, "status")
	code, ok := b.h.exit("status", c)
	if !ok || code != "" {
		return ""
	}
	var s statusOut
	if json.Unmarshal([]byte(c.stdout), &s) != nil {
		return ""
	}
	return s.LeaderID
}

func (b *bb) waitLeader(limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); {
		if b.leader() != "" {
			return true
		}
		time.Sleep(300 * time.Millisecond)
	}
	return false
}

func (b *bb) fault(f string, args ...any) {
	b.fmu.Lock()
	b.faultLog = append(b.faultLog, fmt.Sprintf("%s "+f, append([]any{b.h.at(time.Now())}, args...)...))
	b.fmu.Unlock()
}

// faults kills, pauses and restarts servers in turn until stop, letting the
// cluster elect a leader between faults.
func (b *bb) faults(r *rand.Rand, stop time.Time) {
	kinds := []string{"kill", "pause-leader", "restart-flags", "kill-leader", "kill-majority", "kill", "pause-leader", "kill-all"}
	for i := 0; ; i++ {
		time.Sleep(time.Duration(2000+r.IntN(2000)) * time.Millisecond)
		if time.Until(stop) < 5*time.Second {
			return
		}
		s := b.c.servers[r.IntN(3)]
		kind := kinds[i%len(kinds)]
		if kind == "pause-leader" || kind == "kill-leader" {
			if s = b.c.byID(b.leader()); s == nil {
				b.fault("%s skipped (no leader)", kind)
				continue
			}
		}
		switch kind {
		case "kill", "kill-leader":
			down := time.Duration(500+r.IntN(3000)) * time.Millisecond
			b.fault("%s: kill -9 server %s for %v", kind, s.id, down)
			b.c.stop(s, syscall.SIGKILL)
			time.Sleep(down)
			b.c.start(s)
		case "kill-majority", "kill-all":
			// Quorum lost (every call must fail with a contract code), or
			// the whole cluster crashes: leases must survive the restart.
			down := time.Duration(500+r.IntN(2500)) * time.Millisecond
			victims := []*server{s, b.c.servers[(int(s.id[0]-'1')+1)%3]}
			if kind == "kill-all" {
				victims = b.c.servers
			}
			var ids []string
			for _, v := range victims {
				ids = append(ids, v.id)
				b.c.stop(v, syscall.SIGKILL)
			}
			b.fault("%s: kill -9 servers %s for %v", kind, strings.Join(ids, ","), down)
			time.Sleep(down)
			for _, v := range victims {
				b.c.start(v)
			}
		case "pause-leader":
			d := time.Duration(2000+r.IntN(2000)) * time.Millisecond
			b.fault("SIGSTOP leader %s for %v", s.id, d)
			b.c.pause(s, true)
			time.Sleep(d)
			b.c.pause(s, false)
		case "restart-flags":
			idx := int(s.id[0] - '1')
			alt := s.starts%2 == 1 // every other restart of a server swaps flag sets
			f := baseFlags[idx]
			if alt {
				f = altFlags[idx]
			}
			b.fault("restart server %s with %s", s.id, strings.Join(f, " "))
			b.c.stop(s, syscall.SIGTERM)
			s.extra = append(append([]string{}, f...), common...)
			b.c.start(s)
		}
		b.waitLeader(30 * time.Second)
	}
}
