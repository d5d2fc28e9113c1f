package manager_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/examplecluster"
	"github.com/leasehold/leasehold/lease"
	"github.com/leasehold/leasehold/manager"
)

// Claim a lease that the manager keeps renewing, act only while it is safe,
// and fence with its token.
func Example() {
	endpoints, stop := examplecluster.Start() // your servers' client addresses
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	m := manager.New(manager.Config{Transport: manager.FromClient(c), Budget: c.RetryBudget()})
	defer m.Close()
	ctx := context.Background()

	h := m.Handle("application-leadership", "model-1")
	l, err := h.Claim(ctx, "postgresql", "postgresql/0", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("holding with token", l.Token())
	// The guarantee: held until SafeUntil, which every renewal moves on.
	// Stop acting as holder on <-l.Lost() or when SafeUntil passes.
	fmt.Println("held now:", l.Held(time.Now()))

	// Anyone can ask whether a token is still the holder's (fencing).
	fmt.Println("token current:", h.Check(ctx, "postgresql", l.Token()))

	if err := h.Revoke(ctx, "postgresql", "postgresql/0"); err != nil {
		log.Fatal(err)
	}
	err = h.Check(ctx, "postgresql", l.Token())
	fmt.Println("after revoke, not held:", errors.Is(err, lease.ErrNotHeld))
	// Output:
	// holding with token 1
	// held now: true
	// token current: <nil>
	// after revoke, not held: true
}

// Wait for the current holder to go, then be granted the lease: the claim
// waits in the cluster's queue for the key and the release grants it.
func ExampleHandle_ClaimOnRelease() {
	endpoints, stop := examplecluster.Start()
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	m := manager.New(manager.Config{Transport: manager.FromClient(c), Budget: c.RetryBudget()})
	defer m.Close()
	ctx := context.Background()
	h := m.Handle("application-leadership", "model-1")

	if _, err := h.Claim(ctx, "kafka", "kafka/0", 30*time.Second); err != nil {
		log.Fatal(err)
	}
	_, err = h.Claim(ctx, "kafka", "kafka/1", 30*time.Second)
	fmt.Println("kafka/1 denied:", errors.Is(err, lease.ErrDenied))

	// kafka/0 steps down a moment later. Whichever lands first, the queued
	// claim or the release, kafka/1 ends up holding the lease.
	go func() {
		time.Sleep(10 * time.Millisecond)
		h.Revoke(ctx, "kafka", "kafka/0")
	}()
	l, err := h.ClaimOnRelease(ctx, "kafka", "kafka/1", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Holder, "holds token", l.Token())
	// Output:
	// kafka/1 denied: true
	// kafka/1 holds token 2
}

// Block until a lease is released, with no polling.
func ExampleHandle_WaitUntilReleased() {
	endpoints, stop := examplecluster.Start()
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	m := manager.New(manager.Config{Transport: manager.FromClient(c), Budget: c.RetryBudget()})
	defer m.Close()
	ctx := context.Background()
	h := m.Handle("application-leadership", "model-1")

	l, err := h.Claim(ctx, "nginx", "nginx/0", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	go h.Revoke(ctx, "nginx", l.Holder)
	if err := h.WaitUntilReleased(ctx, "nginx"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("nginx released")
	// Output:
	// nginx released
}
