package manager

import (
	"errors"
	"testing"
	"time"

	"github.com/leasehold/leasehold/lease"
)

func TestCheckPinUnpinLeasesAndIsolation(t *testing.T) {
	e := newEnv(t, nil)
	l, err := e.h.Claim(ctxT(t), "mysql", "u/0", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, opsBefore := e.tr.counts()
	if err := e.h.Check(ctxT(t), "mysql", l.Token()); err != nil {
		t.Fatalf("check own lease: %v", err)
	}
	if _, ops := e.tr.counts(); ops != opsBefore {
		t.Fatal("a lease the manager vouches for was checked remotely")
	}
	if err := e.h.Check(ctxT(t), "mysql", l.Token()+1); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("wrong token: %v", err)
	}
	// Another group and another namespace are other leases.
	other := e.m.Handle(ns, "model-2")
	if err := other.Check(ctxT(t), "mysql", l.Token()); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("check across groups: %v", err)
	}
	if _, err := e.m.Handle("singular", grp).Claim(ctxT(t), "mysql", "u/1", 10*time.Second); err != nil {
		t.Fatalf("claim in another namespace: %v", err)
	}
	if err := e.h.Pin(ctxT(t), "mysql", "upgrade"); err != nil {
		t.Fatal(err)
	}
	ls, err := e.h.Leases(ctxT(t))
	if err != nil || len(ls) != 1 || ls[0].Holder != "u/0" || !ls[0].Pinned {
		t.Fatalf("leases %+v %v", ls, err)
	}
	if err := e.h.Unpin(ctxT(t), "mysql", "upgrade"); err != nil {
		t.Fatal(err)
	}
	if err := e.h.Revoke(ctxT(t), "mysql", "u/0"); err != nil {
		t.Fatal(err)
	}
	if ls, _ := e.h.Leases(ctxT(t)); len(ls) != 0 {
		t.Fatalf("after revoke %+v", ls)
	}
	// Revoking stopped its renewals: only the other namespace's timer is left.
	eventually(t, "renewal loop gone", func() bool { return e.c.Pending() == 1 })
}
