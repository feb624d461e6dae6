package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// Node status (moonchat cluster status): every node answers requests on
// the subject <stream>.nodes with a status of its own making (ServeNodes),
// and any node can ask them all at once (GatherNodes). The subject is
// outside the stream's subjects: nothing of it is stored. There is no
// membership list: the nodes are those that answer within the wait.

// nodesSubject is where nodes answer status requests.
func nodesSubject(stream string) string { return stream + ".nodes" }

// ServeNodes answers every GatherNodes request, of any node, with what
// status returns (called on the NATS client's goroutine for this
// subscription, once per request), until the Log is closed.
func (l *Log) ServeNodes(status func() []byte) error {
	if err := l.usable(); err != nil {
		return err
	}
	if _, err := l.nc.Subscribe(nodesSubject(l.cfg.Stream), func(m *nats.Msg) {
		_ = m.Respond(status()) // the asker may be gone: nothing to do
	}); err != nil {
		return l.unavailable("node status", err)
	}
	// Once the server has the subscription, every later gathering,
	// from any node, reaches it.
	if err := l.nc.Flush(); err != nil {
		return l.unavailable("node status", err)
	}
	return nil
}

// GatherNodes asks every node serving its status (ServeNodes), this one
// included, and returns the answers that arrived within wait (or until
// ctx ends), in arrival order. It fails with ErrUnavailable when NATS
// cannot be reached now.
func (l *Log) GatherNodes(ctx context.Context, wait time.Duration) ([][]byte, error) {
	if err := l.usable(); err != nil {
		return nil, err
	}
	sub, err := l.nc.SubscribeSync(l.nc.NewRespInbox())
	if err != nil {
		return nil, l.unavailable("node status", err)
	}
	defer sub.Unsubscribe()
	if err := l.nc.PublishRequest(nodesSubject(l.cfg.Stream), sub.Subject, nil); err != nil {
		return nil, l.unavailable("node status", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out [][]byte
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return out, nil
			}
			return out, l.unavailable("node status", err)
		}
		out = append(out, m.Data)
	}
}
