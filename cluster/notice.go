package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Room notices (chat.Broadcast: a script's chat.broadcast, a timer's
// announcement) go to every node's members of the room. A notice is not
// stored anywhere, on a single node either: it travels on core NATS, on
// the subject <stream>.notice, outside the stream, and a node that is cut
// off when it passes never shows it. Every node, the sender included,
// gets it from the subscription (ServeNotices) and hands it to its room.

// noticesSubject is where nodes publish and receive room notices.
func noticesSubject(stream string) string { return stream + ".notice" }

// notice is the payload of one room notice.
type notice struct {
	Room string `json:"room"`
	Text string `json:"text"`
}

// PublishNotice sends text to room's members on every node of the
// cluster (chat.NoticeBroker). It fails, wrapping ErrUnavailable, while
// the node cannot reach NATS: nobody was told.
func (l *Log) PublishNotice(room, text string) error {
	if err := l.usable(); err != nil {
		return err
	}
	b, err := json.Marshal(notice{Room: room, Text: text})
	if err != nil {
		return fmt.Errorf("cluster: room notice: %w", err)
	}
	if err := l.nc.Publish(noticesSubject(l.cfg.Stream), b); err != nil {
		return l.unavailable("room notice", err)
	}
	return nil
}

// ServeNotices calls deliver for every room notice published by any node,
// this one included (on the NATS client's goroutine for the
// subscription, in the order this node received them), until ctx ends or
// the Log is closed: once ctx has ended, deliver is not called again. It
// returns once the subscription is in place.
func (l *Log) ServeNotices(ctx context.Context, deliver func(room, text string)) error {
	if err := l.usable(); err != nil {
		return err
	}
	sub, err := l.nc.Subscribe(noticesSubject(l.cfg.Stream), func(m *nats.Msg) {
		if ctx.Err() != nil {
			return // stopped: the unsubscription below may not be done yet
		}
		var n notice
		if json.Unmarshal(m.Data, &n) != nil || n.Room == "" {
			l.log.Warn("cluster: an undecodable room notice skipped", "bytes", len(m.Data))
			return
		}
		deliver(n.Room, n.Text)
	})
	if err != nil {
		return l.unavailable("room notices", err)
	}
	if err := l.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return l.unavailable("room notices", err)
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	return nil
}
