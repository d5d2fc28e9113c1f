package election_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/election"
	"github.com/leasehold/leasehold/internal/examplecluster"
	"github.com/leasehold/leasehold/lease"
)

// Elect a leader and run its work only while it leads.
func ExampleRun() {
	endpoints, stop := examplecluster.Start() // your servers' client addresses
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, shutdown := context.WithCancel(context.Background())
	cfg := election.Config{
		Client:   c,
		Key:      lease.Key{Namespace: "singular-controller", Group: "model-1", Name: "scheduler"},
		ID:       "controller/0", // unique per candidate
		Duration: 15 * time.Second,
	}
	err = election.Run(ctx, cfg, election.Callbacks{
		OnStartedLeading: func(ctx context.Context, token uint64) {
			fmt.Println("leading with fencing token", token)
			// Do the leader's work under ctx, sending token with every
			// downstream write; return once ctx is done. Here the work
			// finishes and asks to shut down.
			shutdown()
			<-ctx.Done()
		},
		OnStoppedLeading: func() { fmt.Println("stopped leading") },
	})
	fmt.Println("Run returned", err)
	// Output:
	// leading with fencing token 1
	// stopped leading
	// Run returned <nil>
}

// Campaign, lead, resign: the parts of Run, as in etcd's concurrency.Election.
func ExampleElection_Campaign() {
	endpoints, stop := examplecluster.Start()
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := lease.Key{Namespace: "singular-controller", Group: "model-1", Name: "compactor"}

	a, err := election.New(election.Config{Client: c, Key: key, ID: "controller/0"})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := election.New(election.Config{Client: c, Key: key, ID: "controller/1"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	lead, err := a.Campaign(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("controller/0 leads, token", lead.Token())
	cur, _ := b.Leader(ctx)
	fmt.Println("controller/1 sees leader", cur.ID)

	next := make(chan *election.Leadership)
	go func() {
		l, err := b.Campaign(ctx) // waits its turn
		if err != nil {
			log.Fatal(err)
		}
		next <- l
	}()
	// Stop the work (lead.Context() is cancelled first), then hand over.
	if err := lead.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("controller/0 resigned:", context.Cause(lead.Context()))
	lead = <-next
	fmt.Println("controller/1 leads, token", lead.Token())
	lead.Resign(ctx)
	// Output:
	// controller/0 leads, token 1
	// controller/1 sees leader controller/0
	// controller/0 resigned: election: resigned
	// controller/1 leads, token 2
}

// Follow who leads, through the watch, without campaigning.
func ExampleElection_Observe() {
	endpoints, stop := examplecluster.Start()
	defer stop()
	c, err := client.New(client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := lease.Key{Namespace: "singular-controller", Group: "model-1", Name: "backup"}

	watcher, err := election.New(election.Config{Client: c, Key: key, ID: "observer"})
	if err != nil {
		log.Fatal(err)
	}
	defer watcher.Close()
	leaders := watcher.Observe(ctx)
	fmt.Printf("leader: %q\n", (<-leaders).ID)

	c.Claim(ctx, key, "controller/2", 15*time.Second) // someone is elected
	fmt.Printf("leader: %q\n", (<-leaders).ID)
	// Output:
	// leader: ""
	// leader: "controller/2"
}
