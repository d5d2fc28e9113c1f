package manager

import (
	"context"

	"github.com/leasehold/leasehold/client"
	"github.com/leasehold/leasehold/lease"
)

// Transport is what the manager needs from the cluster. FromClient adapts a
// *client.Client; tests use fakes.
type Transport interface {
	// Bulk applies cmds and returns one result per command, or an error for
	// the whole request (after the transport's own retries).
	Bulk(ctx context.Context, cmds []lease.Command) ([]client.BulkResult, error)
	// Get is a linearizable read of one lease (nil if absent).
	Get(ctx context.Context, k lease.Key) (*lease.Info, error)
	// List reads the leases of a group.
	List(ctx context.Context, namespace, group string) ([]lease.Info, error)
	// Watch streams the events of a namespace from the moment it returns.
	Watch(ctx context.Context, namespace string) (EventStream, error)
}

// EventStream is an open watch.
type EventStream interface {
	Next() ([]lease.Event, error)
	Close()
}

// ClientTransport is a Transport over a *client.Client.
type ClientTransport struct{ C *client.Client }

// FromClient adapts c.
func FromClient(c *client.Client) ClientTransport { return ClientTransport{C: c} }

func (t ClientTransport) Bulk(ctx context.Context, cmds []lease.Command) ([]client.BulkResult, error) {
	return t.C.Bulk(ctx, cmds)
}

func (t ClientTransport) Get(ctx context.Context, k lease.Key) (*lease.Info, error) {
	l, _, err := t.C.Get(ctx, k)
	if err != nil || l == nil {
		return nil, err
	}
	return &l.Info, nil
}

func (t ClientTransport) List(ctx context.Context, ns, group string) ([]lease.Info, error) {
	ls, _, err := t.C.ListAll(ctx, client.ListOptions{Namespace: ns, Group: group})
	if err != nil {
		return nil, err
	}
	out := make([]lease.Info, len(ls))
	for i := range ls {
		out[i] = ls[i].Info
	}
	return out, nil
}

func (t ClientTransport) Watch(ctx context.Context, ns string) (EventStream, error) {
	return t.C.Watch(ctx, client.WatchOptions{Namespace: ns})
}
