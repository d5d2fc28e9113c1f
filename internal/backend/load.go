package backend

import (
	"time"

	"github.com/leasehold/leasehold/internal/admission"
	"github.com/leasehold/leasehold/internal/grpcserver"
)

var _ grpcserver.Loader = (*Node)(nil)

// Load reports the admission queue's depth and the wait a claim arriving
// now is expected to see; the server stretches its suggested renew interval
// with it.
func (n *Node) Load() (int, time.Duration) {
	st := n.queue.Stats()
	return st.Queued(), st.EstimatedWait[admission.LaneClaim]
}
