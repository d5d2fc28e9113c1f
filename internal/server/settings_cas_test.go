package server_test

import (
	"errors"
	"sync"
	"testing"

	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/devcluster"
	"github.com/leasehold/leasehold/internal/testutil"
	"github.com/leasehold/leasehold/lease"
)

// Issue 17 #9: two admins change the settings from the same version at
// once. One change applies; the other is refused (it would have undone the
// first), not silently merged over it.
func TestConcurrentSettingsChangesFromOneVersion(t *testing.T) {
	c := startCluster(t, devcluster.Options{})
	cl := newClient(t, client.Config{}, c.Leader().ClientAddr)
	// The first leader writes the initial settings (version 1) once it is
	// ready; a change read before that entry applies would be refused for
	// being based on version 0, which is right but not what is tested here.
	var read *client.Settings
	testutil.WaitFor(t, 10*time.Second, "initial settings applied", func() bool {
		s, err := cl.GetSettings(ctxT(t))
		if err == nil && s.Version >= 1 {
			read = s
		}
		return read != nil
	})
	changes := []map[string]string{{"max_duration": "2m"}, {"max_queued_ops": "6000"}}
	errs := make([]error, len(changes))
	var wg sync.WaitGroup
	for i, ch := range changes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = cl.SetSettingsFrom(ctxT(t), read.Version, ch)
		}()
	}
	wg.Wait()
	var refused, applied int
	for i, err := range errs {
		var le *lease.Error
		switch {
		case err == nil:
			applied++
		case errors.As(err, &le) && le.Code == lease.CodeInvalidArgument && le.Field == "settings_version":
			refused++
		default:
			t.Fatalf("change %v: %v", changes[i], err)
		}
	}
	if applied != 1 || refused != 1 {
		t.Fatalf("%d applied, %d refused: %v", applied, refused, errs)
	}
	after, err := cl.GetSettings(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != read.Version+1 {
		t.Fatalf("version %d after one change from %d", after.Version, read.Version)
	}
	// Without a version the server merges the keys on whatever is current:
	// two concurrent changes both apply.
	for i, ch := range []map[string]string{{"max_duration": "3m"}, {"max_queued_ops": "7000"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = cl.SetSettings(ctxT(t), ch)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("unversioned changes: %v", errs)
	}
	final, err := cl.GetSettings(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if value(final, "max_duration") != "3m0s" || value(final, "max_queued_ops") != "7000" || final.Version != after.Version+2 {
		t.Fatalf("after two unversioned changes: version %d, max_duration %s, max_queued_ops %s",
			final.Version, value(final, "max_duration"), value(final, "max_queued_ops"))
	}
}
