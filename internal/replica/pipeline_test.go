package replica

import (
	"errors"
	"net"
	"testing"

	"github.com/hashicorp/raft"
)

// hashicorp/raft's pipelined replication can deadlock after a follower
// answers Success=false (hashicorp/raft#612): the leader's replication to
// that follower stops for good while heartbeats keep it from electing, and
// Raft.Shutdown never returns. The fault suite's leader-flap kind hit it.
// Every TCP transport raftnode builds therefore replicates synchronously.
func TestTCPTransportDoesNotPipeline(t *testing.T) {
	// (The TLS transport takes its settings from the same netTransportConfig.)
	{
		cfg := Config{ID: "a", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0"}
		cfg.setDefaults()
		n := &Node{cfg: cfg}
		_, err := n.openTransport(nil)
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0") // a peer address to dial
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.trans.AppendEntriesPipeline("b", raft.ServerAddress(lis.Addr().String()))
		if p != nil {
			p.Close()
		}
		if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
			t.Errorf("AppendEntriesPipeline = %v; want ErrPipelineReplicationNotSupported", err)
		}
		lis.Close()
		n.trans.(raft.WithClose).Close()
	}
}
