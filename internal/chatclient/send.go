package chatclient

import (
	"context"
	"errors"
	"fmt"
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
	p.as = c.name
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
// had every event they will get. Those without an echo are settled now:
// refused with the reason of an error event that came meanwhile (see
// matchErr), or, for a message nothing was said about, dropped by a
// script without a word; a command without an error ran. c.mu is held.
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
				if i := c.matchErr(p); i >= 0 {
					s.OK, s.Reason = false, c.errs[i].Text
					if c.errs[i].Code != "flood" { // one flood notice stands for every drop
						c.errs = slices.Delete(c.errs, i, i+1)
					}
				} else if !s.OK {
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
		c.errs = c.errs[:0]
	}
	c.pump()
	return ups
}

// refused records an error event that refuses a send. Which send is not
// said, and errors may overtake the echoes of earlier sends (a text too
// long is refused on arrival; the room refuses a message before it
// stores those before it): the barrier that settles the unechoed sends
// hands the errors out (matchErr). c.mu is held.
func (c *Client) refused(e *Event) {
	if len(c.pend) == 0 {
		return
	}
	if len(c.errs) == 64 {
		c.errs = slices.Delete(c.errs, 0, 1)
	}
	c.errs = append(c.errs, Event{Code: e.Code, Text: e.Text})
}

// matchErr returns the index of the first recorded error that can be p's
// refusal, or -1: unknown_command only for a command (and a command gets
// no other, but a script's own refusal, dropped), too_long only for a
// text over the limit it names, a control-character bad_request only for
// a text holding one. c.mu is held.
func (c *Client) matchErr(p *pending) int {
	for i, e := range c.errs {
		if p.kind == kindCommand {
			switch e.Code {
			case "unknown_command", "dropped", "muted", "not_allowed", "hook_failed":
				return i
			}
			continue
		}
		switch e.Code {
		case "unknown_command":
			continue
		case "too_long":
			var limit int
			if _, err := fmt.Sscanf(e.Text, "message too long: at most %d bytes", &limit); err == nil && len(p.text) <= limit {
				continue
			}
		case "bad_request":
			if strings.Contains(e.Text, "control character") && !strings.ContainsFunc(p.text, refusedControl) {
				continue
			}
		}
		return i
	}
	return -1
}

// refusedControl reports whether r is a control character the server
// refuses in a text (docs/protocol.md, "Texts"): all but tab and line
// breaks.
func refusedControl(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f || r >= 0x80 && r <= 0x9f
}

// ack settles a sent send of kind k as delivered, its echo's text being
// text: the oldest with that text (a refused one before it has no echo),
// else the oldest of the kind (a script replaced the text). c.mu is held.
func (c *Client) ack(k sendKind, text string, ups []Update) []Update {
	at := -1
	for i, p := range c.pend {
		if !p.sent || p.kind != k {
			continue
		}
		want := p.text
		if k == kindAction {
			want = strings.TrimPrefix(want, "/me ")
		}
		if want == text {
			at = i
			break
		}
		if at < 0 {
			at = i
		}
	}
	if at < 0 {
		return ups
	}
	p := c.pend[at]
	c.pend = slices.Delete(c.pend, at, at+1)
	c.signal()
	c.pump()
	return append(ups, Update{Settled: &Settled{Text: p.text, To: p.to, OK: true}})
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
