package chatclient

import (
	"slices"
	"strings"
)

// handle applies one server event to the client's state and returns the
// updates to deliver, appended to ups. c.mu is held.
func (c *Client) handle(e *Event, ups []Update) []Update {
	switch e.Type {
	case "welcome":
		c.name = e.User
		if e.Room != "" {
			c.room = e.Room
		}
		c.joinList = true
		c.convResumed = false
		c.loadingOld = false
		c.state.Status = Connected
		c.state.Name, c.state.Room = c.name, c.room
		c.state.Err, c.state.Attempt, c.state.RetryIn = nil, 0, 0
		// Ask which conversations we have (servers without direct
		// messages answer bad_request, which says so).
		c.queue(map[string]string{"type": "conversations"})
		ups = append(ups, Update{Event: e})
		return c.stateUpdate(ups)
	case "history":
		if e.With != "" {
			return c.directPage(e, ups)
		}
		return c.roomPage(e, ups)
	case "message":
		if e.User == c.name {
			ups = c.ack(sentKind(e), e.Text, ups)
		} else if len(c.pend) > 0 {
			if len(c.unclaimed) == 64 {
				c.unclaimed = slices.Delete(c.unclaimed, 0, 1)
			}
			c.unclaimed = append(c.unclaimed, Event{User: e.User, Text: e.Text, Action: e.Action})
		}
		switch {
		case c.catchingUp:
			if e.ID == 0 || e.ID > c.resume {
				c.held = append(c.held, *e)
			}
			return ups
		case e.ID != 0 && e.ID <= c.resume:
			return ups // already delivered (a resume page overlapped it)
		}
		if e.ID != 0 {
			c.resume = e.ID
			c.state.Since = e.ID
		}
		if c.oldest == 0 {
			c.oldest = e.ID
		}
		return append(ups, Update{Event: e})
	case "direct":
		if e.From == c.name {
			ups = c.ack(kindDirect, e.Text, ups)
		}
		peer := e.With
		if held, ok := c.convHeld[peer]; ok {
			c.convHeld[peer] = append(held, *e)
			return ups
		}
		if e.ID != 0 && e.ID <= c.convLast[peer] {
			return ups
		}
		if e.ID != 0 {
			c.convLast[peer] = e.ID
			if c.convOld[peer] == 0 {
				c.convOld[peer] = e.ID
			}
		}
		return append(ups, Update{Event: e})
	case "conversations":
		if c.direct != 1 {
			c.direct = 1
			c.state.Direct = true
			ups = c.stateUpdate(ups)
		}
		if !c.convResumed {
			// Resume every conversation delivered before the drop.
			c.convResumed = true
			// Those the server still has: a conversation with a guest
			// ends with the guest's session.
			for _, cv := range e.Conversations {
				if last := c.convLast[cv.With]; last > 0 && cv.LastID > last {
					c.convHeld[cv.With] = nil
					c.queue(map[string]any{"type": "history", "with": cv.With, "after": last})
				}
			}
		}
		return append(ups, Update{Event: e})
	case "presence":
		if e.Users != nil || (e.Joined == nil && e.Left == nil) {
			if c.joinList {
				c.joinList = false
			} else {
				ups = c.barrierAnswered(ups)
			}
		}
		return append(ups, Update{Event: e})
	case "rename":
		if e.Old == c.name {
			c.name = e.New
			c.state.Name = e.New
			ups = c.stateUpdate(ups)
			// Messages that came under the new name before this event
			// were ours.
			kept := c.unclaimed[:0]
			for _, u := range c.unclaimed {
				if u.User == e.New {
					ups = c.ack(sentKind(&u), u.Text, ups)
					continue
				}
				kept = append(kept, u)
			}
			c.unclaimed = kept
		}
		return append(ups, Update{Event: e})
	case "error":
		if e.Code == "bad_request" && (strings.Contains(e.Text, `unknown type "conversations"`) || strings.Contains(e.Text, `unknown type "direct"`)) {
			// A server without direct messages: not an answer to a send.
			if c.direct != -1 {
				c.direct = -1
				c.state.Direct = false
				ups = c.stateUpdate(ups)
			}
			return ups
		}
		if answersSend(e) {
			c.refused(e)
		} else if peer, ok := strings.CutPrefix(e.Text, "no such user: "); ok && e.Code == "no_such_user" {
			// A conversation's page refused: stop holding its live messages.
			held := c.convHeld[peer]
			delete(c.convHeld, peer)
			for i := range held {
				ups = append(ups, Update{Event: &held[i]})
			}
		}
		if e.Code == "no_history" {
			c.loadingOld = false
		}
		return append(ups, Update{Event: e})
	}
	return append(ups, Update{Event: e})
}

// answersSend reports whether the error event e refuses something sent
// rather than a request: the same codes answer history requests ("no
// such user: bob" for a conversation, "you may not read ROOM"), without
// the "message not sent" of a refused send.
func answersSend(e *Event) bool {
	switch {
	case !refusalCode(e.Code):
		return false
	case e.Code == "no_such_user":
		return strings.HasPrefix(e.Text, "message not sent")
	case e.Code == "not_allowed":
		return !strings.HasPrefix(e.Text, "you may not read")
	}
	return true
}

// refusalCode reports whether an error event answers something sent
// (a message, command or direct message) rather than a request.
func refusalCode(code string) bool {
	switch code {
	case "bad_request", "binary", "too_long", "flood", "dropped", "unknown_command", "hook_failed",
		"muted", "slow_mode", "not_allowed", "no_such_user", "not_delivered":
		return true
	}
	return false
}

// roomPage handles a history event of the room.
func (c *Client) roomPage(e *Event, ups []Update) []Update {
	switch e.Reason {
	case "join":
		c.catchingUp = false
		c.held = c.held[:0]
		if n := len(e.Messages); n > 0 {
			c.oldest, c.olderMore = e.Messages[0].ID, e.More
			if id := e.Messages[n-1].ID; id > c.resume {
				c.resume = id
			}
		}
		c.goLive()
	case "since", "after":
		ups = c.checkUncertain(e.Messages, ups)
		fresh := e.Messages[:0:0]
		for _, m := range e.Messages {
			if m.ID == 0 || m.ID > c.resume {
				fresh = append(fresh, m)
			}
		}
		if n := len(fresh); n > 0 {
			if last := fresh[n-1].ID; last > c.resume {
				c.resume = last
			}
			if c.oldest == 0 {
				c.oldest = fresh[0].ID
			}
		}
		e.Messages = fresh
		ups = append(ups, Update{Event: e})
		if e.More {
			c.catchingUp = true
			c.queue(map[string]any{"type": "history", "after": c.resume})
			c.state.CatchingUp, c.state.Since = true, c.resume
			return c.stateUpdate(ups)
		}
		// Caught up: what arrived live meanwhile follows, once each.
		c.catchingUp = false
		for i := range c.held {
			m := c.held[i]
			if m.ID != 0 && m.ID <= c.resume {
				continue
			}
			if m.ID != 0 {
				c.resume = m.ID
			}
			ups = append(ups, Update{Event: &m})
		}
		c.held = c.held[:0]
		c.goLive()
		c.state.CatchingUp, c.state.Since = false, c.resume
		return c.stateUpdate(ups)
	case "before":
		c.loadingOld = false
		if len(e.Messages) > 0 {
			c.oldest = e.Messages[0].ID
		}
		c.olderMore = e.More
	}
	c.state.Since = c.resume
	return append(ups, Update{Event: e})
}

// directPage handles a history event of a conversation.
func (c *Client) directPage(e *Event, ups []Update) []Update {
	peer := e.With
	for i := range e.Messages {
		e.Messages[i].With = peer
	}
	switch e.Reason {
	case "after":
		fresh := e.Messages[:0:0]
		for _, m := range e.Messages {
			if m.ID == 0 || m.ID > c.convLast[peer] {
				fresh = append(fresh, m)
			}
		}
		e.Messages = fresh
		if n := len(fresh); n > 0 {
			c.convLast[peer] = fresh[n-1].ID
		}
		if e.More {
			c.queue(map[string]any{"type": "history", "with": peer, "after": c.convLast[peer]})
			return append(ups, Update{Event: e})
		}
		// Caught up: what came live meanwhile follows, once each.
		held := c.convHeld[peer]
		delete(c.convHeld, peer)
		ups = append(ups, Update{Event: e})
		for i := range held {
			m := held[i]
			if m.ID != 0 && m.ID <= c.convLast[peer] {
				continue
			}
			if m.ID != 0 {
				c.convLast[peer] = m.ID
			}
			ups = append(ups, Update{Event: &m})
		}
		return ups
	default:
		if n := len(e.Messages); n > 0 {
			c.convOld[peer] = e.Messages[0].ID
			if last := e.Messages[n-1].ID; last > c.convLast[peer] {
				c.convLast[peer] = last
			}
		}
	}
	return append(ups, Update{Event: e})
}

// goLive starts sending after a join or a finished catch-up: the sends
// queued while disconnected (and those lost in a drop that the resume did
// not show stored) go out now, in order.
func (c *Client) goLive() {
	c.live = true
	if !c.isReady {
		c.isReady = true
		close(c.ready)
	}
	c.pump()
}

// checkUncertain settles the messages sent on a connection that dropped
// before their echo came (uncertain): those a resume page shows stored
// under our name are acknowledged. goLive sends the others again when the
// catch-up is over. c.mu is held.
func (c *Client) checkUncertain(msgs []Event, ups []Update) []Update {
	i := 0
	kept := c.pend[:0]
	for _, p := range c.pend {
		if p.uncertain && (p.kind == kindMessage || p.kind == kindAction) && i < len(msgs) {
			text, action := p.text, false
			if rest, ok := strings.CutPrefix(text, "/me "); ok {
				text, action = rest, true
			}
			for i < len(msgs) && !(msgs[i].User == p.as && msgs[i].Text == text && msgs[i].Action == action) {
				i++
			}
			if i < len(msgs) {
				i++
				ups = append(ups, Update{Settled: &Settled{Text: p.text, OK: true}})
				continue
			}
		}
		kept = append(kept, p)
	}
	if len(kept) != len(c.pend) {
		clear(c.pend[len(kept):])
		c.pend = kept
		c.signal()
	}
	return ups
}

// disconnected forgets the lost connection: its queued frames, the
// barriers it carried, and the commands and direct messages it sent
// (whether they ran or arrived is not knowable, and they are not sent
// twice: they are settled as uncertain). Messages sent on it stay pending,
// uncertain until the resume shows whether they were stored. c.mu is held.
func (c *Client) disconnected(ups []Update) []Update {
	c.conn = nil
	c.live = false
	c.outq = c.outq[:0]
	c.barrierSent, c.barrierDone = 0, 0
	c.loadingOld = false
	c.catchingUp = false
	c.held = c.held[:0]
	c.errs = c.errs[:0]
	clear(c.convHeld) // fetched again from convLast after the reconnect
	kept := c.pend[:0]
	for _, p := range c.pend {
		p.barrier, p.left = 0, barriersNeeded(p.kind)
		if p.sent && p.kind != kindMessage && p.kind != kindAction {
			ups = append(ups, Update{Settled: &Settled{Text: p.text, To: p.to, OK: p.kind == kindCommand,
				Reason: "the connection dropped before it was acknowledged: it may not have arrived"}})
			continue
		}
		if p.sent {
			p.sent = false
			// Without ids (no store on the server) there is nothing to
			// look for: sent again.
			p.uncertain = c.resume > 0
		}
		kept = append(kept, p)
	}
	if len(kept) != len(c.pend) {
		clear(c.pend[len(kept):])
		c.pend = kept
		c.signal()
	}
	return ups
}

// stateUpdate appends the current state. c.mu is held.
func (c *Client) stateUpdate(ups []Update) []Update {
	st := c.state
	return append(ups, Update{State: &st})
}

// Older asks for the page of room messages before the oldest delivered
// (answered by a history event with reason "before"). It reports false
// when there is nothing older, a page is on its way, or the client is not
// connected.
func (c *Client) Older() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.loadingOld || c.oldest == 0 || !c.olderMore {
		return false
	}
	c.loadingOld = true
	c.queue(map[string]any{"type": "history", "before": c.oldest, "limit": c.opts.PageSize})
	return true
}

// HasOlder reports whether older room messages exist than those delivered.
func (c *Client) HasOlder() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.oldest != 0 && c.olderMore
}

// Conversation asks for a page of the conversation with peer: the newest
// messages when before is 0, else those older than before.
func (c *Client) Conversation(peer string, before uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.direct == -1 {
		return
	}
	req := map[string]any{"type": "history", "with": peer, "limit": c.opts.PageSize}
	if before > 0 {
		req["before"] = before
	}
	c.queue(req)
}

// Conversations asks for the list of our conversations (a
// "conversations" event answers).
func (c *Client) Conversations() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.direct != -1 {
		c.queue(map[string]string{"type": "conversations"})
	}
}

// Typing tells the room that the user is typing ({"type":"typing"}; the
// caller sends it at most every 2 s while the user types a message).
// Nothing is sent while disconnected.
func (c *Client) Typing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live {
		c.queue(map[string]string{"type": "typing"})
	}
}

// Since is the resume point: the id of the last room message delivered
// in order (0 when none has an id).
func (c *Client) Since() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resume
}
