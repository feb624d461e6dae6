package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go"
)

// Kicks across nodes: Presence.Kick sends a core NATS request to the
// member's node, on <stream>.kick.<node token> (outside every stream:
// nothing of it is stored); the node answers once it has kicked
// (ServeKicks). An empty answer is success, any other its error's text;
// an error the asker must recognise carries its code in the header
// Moonchat-Kick-Error as well (kickCodes): "no-such-user" for
// chat.ErrNoSuchUser (the member left meanwhile: the admin API answers
// 404, not 503).

// ErrNoSuchNode: the node Kick or RelayDirect asks does not serve that
// request (no such node, or it is gone).
var ErrNoSuchNode = errors.New("cluster: no such node serving the request")

// kickRequest is a kick's request body.
type kickRequest struct {
	Session uint64 `json:"s"`
	Reason  string `json:"r,omitempty"`
	By      string `json:"b,omitempty"`
}

func kickSubject(stream, nodeTok string) string { return stream + ".kick." + nodeTok }

// kickErrorHeader carries the code of a kick's error (kickCodes).
const kickErrorHeader = "Moonchat-Kick-Error"

// kickCodes are the errors a kick's answer carries as codes, so that
// Kick returns them for errors.Is on the asking node.
var kickCodes = map[string]error{
	"no-such-user": chat.ErrNoSuchUser,
}

// kickCode returns err's code ("" = none: its text only).
func kickCode(err error) string {
	for code, e := range kickCodes {
		if errors.Is(err, e) {
			return code
		}
	}
	return ""
}

// Kick asks node to kick its member session with reason, audited as by,
// and returns once node has (chat.Presence.Kick). It fails with
// ErrNoSuchNode when node does not answer at all, with chat.ErrUnavailable
// (wrapped) when NATS cannot be reached, with node's error otherwise:
// wrapping chat.ErrNoSuchUser when node has no such member (it left),
// else an error with node's error's text.
func (p *Presence) Kick(ctx context.Context, node string, session uint64, reason, by string) error {
	if err := p.ready("kick"); err != nil {
		return err
	}
	b, _ := json.Marshal(kickRequest{Session: session, Reason: reason, By: by}) // plain struct: cannot fail
	ctx, cancel := context.WithTimeout(ctx, p.l.cfg.PublishTimeout)
	defer cancel()
	m, err := p.l.nc.RequestWithContext(ctx, kickSubject(p.l.cfg.Stream, tok(node)), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w: %q", ErrNoSuchNode, node)
	}
	if err != nil {
		return p.l.unreachable("kick on node "+node, err)
	}
	if e := kickCodes[m.Header.Get(kickErrorHeader)]; e != nil {
		return fmt.Errorf("cluster: kick on node %s: %w", node, e)
	}
	if len(m.Data) > 0 {
		return fmt.Errorf("cluster: kick on node %s: %s", node, m.Data)
	}
	return nil
}

// ServeKicks answers the kicks other nodes send this node's members
// (Presence.Kick): kick is called for each (on the NATS client's
// goroutine for this subscription, one at a time) and its error, if any,
// is the answer. It returns once the subscription is in place; serving
// ends when ctx ends or the Log is closed.
func (p *Presence) ServeKicks(ctx context.Context, kick func(session uint64, reason, by string) error) error {
	if err := p.ready("kicks"); err != nil {
		return err
	}
	sub, err := p.l.nc.Subscribe(kickSubject(p.l.cfg.Stream, p.nodeTok), func(m *nats.Msg) {
		var r kickRequest
		if err := json.Unmarshal(m.Data, &r); err != nil {
			_ = m.Respond([]byte("bad kick request"))
			return
		}
		answer := &nats.Msg{Header: nats.Header{}}
		if err := kick(r.Session, r.Reason, r.By); err != nil {
			answer.Data = []byte(err.Error())
			if code := kickCode(err); code != "" {
				answer.Header.Set(kickErrorHeader, code)
			}
		}
		_ = m.RespondMsg(answer) // the asker may be gone: nothing to do
	})
	if err != nil {
		return p.l.unreachable("kicks", err)
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	if err := p.l.nc.Flush(); err != nil {
		return p.l.unreachable("kicks", err)
	}
	return nil
}
