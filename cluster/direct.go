package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go"
)

// Guests' direct messages across nodes (chat.DirectRelay): a guest's
// conversations live in its node's memory only, so a direct message to
// or from another node's guest is relayed between the two nodes as a
// core NATS request to the guest's node, on <stream>.direct.<node
// token>, outside every stream: nothing of it is stored. The node
// answers once it has kept and handed it out (ServeDirects), with the
// message's id or a refusal (chat.RelayAnswer). A delivery to an
// account's connections on another node (chat.RelayedDirect.Deliver)
// goes on <stream>.directout.<node token>, served by a subscription of
// its own: a node serving a relay may ask deliveries of other nodes, and
// a delivery never asks anything, so two nodes never wait for each
// other's one serving goroutine.

func directSubject(stream, nodeTok string) string { return stream + ".direct." + nodeTok }

func directOutSubject(stream, nodeTok string) string { return stream + ".directout." + nodeTok }

// RelayDirect hands d to node's chat server and returns its answer
// (chat.DirectRelay). It fails wrapping chat.ErrUnavailable when NATS
// cannot be reached (nothing was sent), wrapping ErrNoSuchNode when no
// node of that name serves direct messages (it is gone), with another
// error when node did not answer within the context and
// Config.PublishTimeout (it may or may not have served it).
func (p *Presence) RelayDirect(ctx context.Context, node string, d chat.RelayedDirect) (chat.RelayAnswer, error) {
	if err := p.ready("direct message"); err != nil {
		return chat.RelayAnswer{}, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return chat.RelayAnswer{}, fmt.Errorf("cluster: direct message: %w", err)
	}
	subject := directSubject(p.l.cfg.Stream, tok(node))
	if d.Deliver {
		subject = directOutSubject(p.l.cfg.Stream, tok(node))
	}
	ctx, cancel := context.WithTimeout(ctx, p.l.cfg.PublishTimeout)
	defer cancel()
	m, err := p.l.nc.RequestWithContext(ctx, subject, b)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return chat.RelayAnswer{}, fmt.Errorf("cluster: direct message to node %q: %w", node, ErrNoSuchNode)
	case err != nil && p.l.usable() != nil:
		return chat.RelayAnswer{}, p.l.unreachable("direct message to node "+node, err)
	case err != nil:
		// NATS is up: the node itself did not answer.
		return chat.RelayAnswer{}, fmt.Errorf("cluster: direct message to node %q: no answer: %w", node, err)
	}
	var ans chat.RelayAnswer
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		return chat.RelayAnswer{}, fmt.Errorf("cluster: direct message to node %q: undecodable answer: %w", node, err)
	}
	return ans, nil
}

// ServeDirects answers the direct messages other nodes relay to this
// node (Presence.RelayDirect): serve is called for each (on the NATS
// client's goroutine of one of two subscriptions, relays and deliveries,
// one at a time each) and its answer sent back. It returns once both
// subscriptions are in place; serving ends when ctx ends or the Log is
// closed.
func (p *Presence) ServeDirects(ctx context.Context, serve func(chat.RelayedDirect) chat.RelayAnswer) error {
	if err := p.ready("direct messages"); err != nil {
		return err
	}
	handle := func(m *nats.Msg) {
		var d chat.RelayedDirect
		if err := json.Unmarshal(m.Data, &d); err != nil {
			p.l.log.Warn("cluster: an undecodable relayed direct message skipped", "bytes", len(m.Data))
			return // the asker gets no answer: a relay_failed there
		}
		b, _ := json.Marshal(serve(d)) // plain struct: cannot fail
		_ = m.Respond(b)               // the asker may be gone: nothing to do
	}
	var subs []*nats.Subscription
	stop := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, subject := range []string{directSubject(p.l.cfg.Stream, p.nodeTok), directOutSubject(p.l.cfg.Stream, p.nodeTok)} {
		sub, err := p.l.nc.Subscribe(subject, handle)
		if err != nil {
			stop()
			return p.l.unreachable("direct messages", err)
		}
		subs = append(subs, sub)
	}
	if err := p.l.nc.Flush(); err != nil {
		stop()
		return p.l.unreachable("direct messages", err)
	}
	context.AfterFunc(ctx, stop)
	return nil
}
