package blackbox

import (
	"encoding/json"
	"testing"
	"time"
)

// A `wait --claim --max-wait` that gives up with exit 7 (deadline_exceeded:
// "not applied") must leave no claim behind: its holder is never granted the
// lease afterwards. Found by TestBlackBox (a waiter granted a lease 0.9 s
// after its wait exited 7). The server withdraws the queued claim when the
// stream ends, but only if it can still write: here the leader serving the
// stream is paused long enough to lose leadership and resumes as a follower
// with the stream still open; when the wait gives up, the follower cannot
// write the withdrawal and the orphaned claim is granted at the next release.
func TestWaitClaimGiveUpIsNeverGranted(t *testing.T) {
	if testing.Short() {
		t.Skip("three server processes")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	var flags [3][]string
	c := startCluster(t, bin, dir, flags)
	b := &bb{t: t, c: c, bin: bin, h: newHistory(), eps: c.endpoints()}
	if !b.waitLeader(60 * time.Second) {
		t.Fatalf("no leader\n%s", c.logTails(20))
	}
	const key = "bb/g/k"
	leader := c.byID(b.leader())
	if leader == nil {
		t.Fatal("no leader")
	}
	if cl := b.cli(30*time.Second, b.eps, "claim", key, "owner", "--duration", "30s"); cl.exit != 0 {
		t.Fatalf("claim: %s", cl)
	}
	eps := leader.client // the wait's stream is on the leader
	for _, s := range c.servers {
		if s != leader {
			eps += "," + s.client
		}
	}
	done := make(chan *call, 1)
	go func() {
		done <- b.cli(60*time.Second, eps, "wait", key, "--claim", "waiter", "--duration", "10s", "--max-wait", "8s")
	}()
	time.Sleep(1500 * time.Millisecond)
	c.pause(leader, true)
	time.Sleep(3500 * time.Millisecond) // another leader is elected
	c.pause(leader, false)
	w := <-done
	t.Logf("wait: %s", w)
	if code, breach := contractErr(w); breach != "" || (w.exit != 0 && w.exit != 1 && w.exit != 7) {
		t.Fatalf("wait: %s %s", code, breach)
	}
	if !b.waitLeader(30 * time.Second) {
		t.Fatal("no leader after the pause")
	}
	if w.exit == 0 { // granted as it gave up: it was told so
		return
	}
	if cl := b.cli(30*time.Second, b.eps, "revoke", key, "owner"); cl.exit != 0 {
		t.Fatalf("revoke: %s", cl)
	}
	time.Sleep(2 * time.Second) // a queued claim is granted at the release
	g := b.cli(30*time.Second, b.eps, "get", key)
	var out getOut
	if err := json.Unmarshal([]byte(g.stdout), &out); err != nil || g.exit != 0 {
		t.Fatalf("get: %s", g)
	}
	t.Logf("after the release: %s", g)
	if w.exit == 7 && out.Found && out.Holder == "waiter" {
		t.Errorf("the wait exited 7 (not applied), yet its holder was granted the lease afterwards: %s", g)
	}
}
