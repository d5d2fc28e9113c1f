package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/examplecluster"
	"github.com/leasehold/leasehold/lease"
)

// Claim a lease, fence a write with its token, and see a second holder
// denied.
func Example() {
	endpoints, stop := examplecluster.Start() // your servers' client addresses
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := lease.Key{Namespace: "application-leadership", Group: "model-1", Name: "mysql"}

	res, err := c.Claim(ctx, key, "mysql/0", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Outcome, "to mysql/0, fencing token", res.Token)

	// Send the token with every write the holder makes downstream; the
	// store keeps the highest token it has seen and refuses lower ones.
	store := &fencedStore{}
	fmt.Println("mysql/0 writes:", store.write(res.Token, "config v1"))

	_, err = c.Claim(ctx, key, "mysql/1", 30*time.Second)
	var le *lease.Error
	if errors.As(err, &le) && errors.Is(err, lease.ErrDenied) {
		fmt.Println("mysql/1 denied; held by", le.Holder)
	}

	if _, err := c.Revoke(ctx, key, "mysql/0"); err != nil {
		log.Fatal(err)
	}
	res, _ = c.Claim(ctx, key, "mysql/1", 30*time.Second)
	fmt.Println(res.Outcome, "to mysql/1, fencing token", res.Token)
	fmt.Println("mysql/1 writes:", store.write(res.Token, "config v2"))
	// A write mysql/0 sent before it stepped down arrives late:
	fmt.Println("mysql/0's late write:", store.write(1, "config v1.1"))
	// Output:
	// granted to mysql/0, fencing token 1
	// mysql/0 writes: <nil>
	// mysql/1 denied; held by mysql/0
	// granted to mysql/1, fencing token 2
	// mysql/1 writes: <nil>
	// mysql/0's late write: stale fencing token 1 < 2
}

// fencedStore stands for a downstream store that checks fencing tokens.
type fencedStore struct{ highest uint64 }

func (s *fencedStore) write(token uint64, _ string) error {
	if token < s.highest {
		return fmt.Errorf("stale fencing token %d < %d", token, s.highest)
	}
	s.highest = token
	return nil
}

// Wait for a lease to be released and be granted it in the same step: the
// claim waits in the server's queue for the key, so a release wakes one
// waiter, not a herd.
func ExampleClient_ClaimOnRelease() {
	endpoints, stop := examplecluster.Start()
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := lease.Key{Namespace: "singular-controller", Group: "model-1", Name: "cleaner"}

	if _, err := c.Claim(ctx, key, "controller/0", time.Minute); err != nil {
		log.Fatal(err)
	}
	queued := make(chan struct{})
	go func() {
		<-queued
		c.Revoke(ctx, key, "controller/0") // the holder steps down
	}()
	res, err := c.ClaimOnRelease(ctx, key, "controller/1", time.Minute, 30*time.Second, func(client.Result) {
		fmt.Println("controller/1 queued")
		close(queued)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Outcome, "to controller/1, fencing token", res.Token)
	// Output:
	// controller/1 queued
	// granted to controller/1, fencing token 2
}

// Follow a namespace's lease events from the applied log.
func ExampleClient_Watch() {
	endpoints, stop := examplecluster.Start()
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	w, err := c.Watch(ctx, client.WatchOptions{Namespace: "application-leadership"})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	key := lease.Key{Namespace: "application-leadership", Group: "model-1", Name: "redis"}
	c.Claim(ctx, key, "redis/0", time.Minute)
	c.Revoke(ctx, key, "redis/0")
	for seen := 0; seen < 2; {
		evs, err := w.Next()
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range evs {
			fmt.Println(e.Kind, e.Key, e.Holder, "token", e.Token)
			seen++
		}
	}
	// Output:
	// claimed application-leadership/model-1/redis redis/0 token 1
	// revoked application-leadership/model-1/redis redis/0 token 1
}
