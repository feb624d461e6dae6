package chatclient

import (
	"context"
	"errors"
	"slices"
	"strings"
)

// Sends and their acknowledgement (see the package comment).

// barriersNeeded is how many barrier answers settle a send nothing
// echoed. A message's echo or refusal comes before the first barrier's
// answer, but what a command's script does (its notices, a /me action, a
// /nick's rename event, under which name our next messages come) is
// queued while it runs, and may follow that answer: a second barrier,
// asked for after the first answer, comes after all of it.
func barriersNeeded(sendKind) int { return 2 }

// sentKind is the kind of send our message event e acknowledges.
func sentKind(e *Event) sendKind {
	if e.Action {
		return kindAction
	}
	return kindMessage
}

// Send sends a chat message (a text starting with "/" is a command, as
// the server reads it). While disconnected it is kept and sent after the
// reconnect. Its fate comes as a Settled update.
func (c *Client) Send(text string) {
	k := kindMessage
	switch {
	case strings.HasPrefix(text, "/me "):
		k = kindAction
	case strings.HasPrefix(text, "/"):
		k = kindCommand
	}
	c.add(&pending{kind: k, text: text})
}

// ErrNoDirect is returned by SendDirect when the server does not speak
// direct messages.
var ErrNoDirect = errors.New("this server has no direct messages")

// SendDirect sends a direct message to the user called to.
func (c *Client) SendDirect(to, text string) error {
	c.mu.Lock()
	unsupported := c.direct == -1
	c.mu.Unlock()
	if unsupported {
		return ErrNoDirect
	}
	c.add(&pending{kind: kindDirect, text: text, to: to})
	return nil
}

// add queues a send. Sends go out in order: while earlier ones wait for a
// connection, so does this one.
func (c *Client) add(p *pending) {
	p.left = barriersNeeded(p.kind)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pend = append(c.pend, p)
	c.pump()
}

// pump writes the sends not written yet, in order, up to and including
// the first command or action: what a script does for it (an action it
// posts, a rename) is queued behind what is already in the room's queue,
// so the sends after it wait until it is settled, to reach the room in
// the order they were made. c.mu is held.
func (c *Client) pump() {
	if !c.live {
		return
	}
	for _, p := range c.pend {
		if !p.sent {
			p.uncertain = false
			c.write(p)
		}
		if p.kind == kindCommand || p.kind == kindAction {
			break
		}
	}
	c.ensureBarrier()
}

// write queues p's frame on the current connection. c.mu is held.
func (c *Client) write(p *pending) {
	p.sent = true
	if p.kind == kindDirect {
		c.queue(map[string]string{"type": "direct", "to": p.to, "text": p.text})
		return
	}
	c.queue(map[string]string{"type": "message", "text": p.text})
}

// ensureBarrier asks for a barrier covering the sends that wait for one,
// unless one is on its way (its answer asks for the next). c.mu is held.
func (c *Client) ensureBarrier() {
	if !c.live || c.barrierSent != c.barrierDone {
		return
	}
	need := false
	for _, p := range c.pend {
		if p.sent && p.barrier == 0 {
			need = true
			break
		}
	}
	if !need {
		return
	}
	c.barrierSent++
	for _, p := range c.pend {
		if p.sent && p.barrier == 0 {
			p.barrier = c.barrierSent
		}
	}
	c.queue(map[string]string{"type": "presence"})
}

// barrierAnswered counts a barrier's answer: the sends it covered have
// had every event they will get. c.mu is held.
func (c *Client) barrierAnswered(ups []Update) []Update {
	if c.barrierDone >= c.barrierSent {
		return ups // a list we did not ask for this way
	}
	c.barrierDone++
	kept := c.pend[:0]
	for _, p := range c.pend {
		if p.barrier == c.barrierDone {
			p.left--
			if p.left <= 0 {
				s := &Settled{Text: p.text, To: p.to, OK: p.kind == kindCommand}
				if !s.OK {
					s.Reason = "not sent: the server dropped it without a reason (a script)"
				}
				ups = append(ups, Update{Settled: s})
				continue
			}
			p.barrier = 0
		}
		kept = append(kept, p)
	}
	if len(kept) != len(c.pend) {
		clear(c.pend[len(kept):])
		c.pend = kept
		c.signal()
	}
	if len(c.pend) == 0 {
		c.unclaimed = c.unclaimed[:0]
	}
	c.pump()
	return ups
}

// ack settles the oldest sent send of kind k as delivered. c.mu is held.
func (c *Client) ack(k sendKind, ups []Update) []Update {
	for i, p := range c.pend {
		if p.sent && p.kind == k {
			c.pend = slices.Delete(c.pend, i, i+1)
			c.signal()
			c.pump()
			return append(ups, Update{Settled: &Settled{Text: p.text, To: p.to, OK: true}})
		}
	}
	return ups
}

// refuse settles the oldest sent send as refused with reason. c.mu is held.
func (c *Client) refuse(reason string, ups []Update) []Update {
	for i, p := range c.pend {
		if p.sent {
			c.pend = slices.Delete(c.pend, i, i+1)
			c.signal()
			c.pump()
			return append(ups, Update{Settled: &Settled{Text: p.text, To: p.to, Reason: reason}})
		}
	}
	return ups
}

// signal wakes WaitSent. c.mu is held.
func (c *Client) signal() {
	if c.changed != nil {
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// Pending is the number of sends not settled yet.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pend)
}

// ErrStopped is returned by WaitSent when Run returned with sends still
// unsettled.
var ErrStopped = errors.New("the connection ended before every send was acknowledged")

// WaitSent waits until every send so far is settled (acknowledged or
// refused), ctx ends, or Run returns (ErrStopped).
func (c *Client) WaitSent(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, ch := len(c.pend), c.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		if ch == nil {
			return ErrStopped
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ch:
		}
	}
}
