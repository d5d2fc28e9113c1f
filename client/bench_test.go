package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/internal/grpcserver"
	"github.com/leasehold/leasehold/internal/grpcserver/servertest"
	"github.com/leasehold/leasehold/lease"
)

// These measure the API's own cost (protobuf, gRPC over loopback TCP,
// routing, validation) against the in-memory fake backend: no Raft, no disk.

func benchClient(b *testing.B) *client.Client {
	c := servertest.NewCluster(1)
	addrs := servertest.Start(b, c, grpcserver.Options{})
	cl, err := client.New(client.Config{Endpoints: addrs})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

func opsPerSec(b *testing.B, ops int) {
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkUnaryClaim(b *testing.B) {
	cl := benchClient(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		k := lease.Key{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", i%1000)}
		if _, err := cl.Claim(ctx, k, "h", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	opsPerSec(b, b.N)
}

func BenchmarkUnaryClaimParallel(b *testing.B) {
	cl := benchClient(b)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := lease.Key{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", i%1000)}
			if _, err := cl.Claim(ctx, k, "h", time.Minute); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	opsPerSec(b, b.N)
}

func BenchmarkBulk(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cl := benchClient(b)
			cmds := make([]lease.Command, n)
			for i := range cmds {
				cmds[i] = lease.Command{Op: lease.OpClaim, Key: lease.Key{Namespace: "ns", Group: "g", Name: fmt.Sprintf("k%d", i)}, Holder: "h", Duration: time.Minute}
			}
			for b.Loop() {
				if _, err := cl.Bulk(context.Background(), cmds); err != nil {
					b.Fatal(err)
				}
			}
			opsPerSec(b, b.N*n)
		})
	}
}
