package chat

import "time"

// posting is the room's scratch for one run of chat messages on its way
// through the message hooks, History.Append and the outbox.
//
// Invariants:
//   - owned by the room goroutine, empty between runs (references are
//     cleared so that a finished run keeps no message or member alive);
//   - msgs[i] was sent by senders[i];
//   - a message reaches the outbox only after History.Append returned
//     without error for it: not stored means not broadcast. In cluster
//     mode it never reaches the outbox from here: only from the log,
//     read back after it acknowledged the run (deliver.go).
type posting struct {
	msgs    []*Message
	senders []*member
}

// post runs the message hooks over a run of chat messages, appends the
// survivors to history in one call, puts them in the outbox and flushes
// it. In cluster mode it publishes them instead (Broker.Publish) and puts
// nothing in the outbox: they come back through Deliver (deliver.go).
func (r *room) post(ops []op) {
	s := r.srv
	msgs := r.posting.msgs[:0]
	senders := r.posting.senders[:0]
	for i := range ops {
		o := &ops[i]
		m := o.m
		r.release = append(r.release, m)
		if !m.joined.Load() {
			continue // refused, or left before its message came up
		}
		if !s.allows(r.name, m.currentRoles(), ActionPost) {
			// Before the hooks: a message the rules refuse is not seen by
			// scripts, stored or delivered (and commands, which scripts
			// answer, are unavailable to this member here).
			s.metrics.dropNotAllowed.Add(1)
			s.log.Debug("chat: message refused by the room rules", "room", r.name, "session", m.id)
			r.out.notice(m, m.appendError(nil, codeNotAllowed, "message not sent: you may not post in "+r.name))
			continue
		}
		if r.moderated(m, o, true) {
			continue
		}
		msg := &Message{Room: r.name, User: m.currentName(), Text: o.text, Time: o.at, Action: o.action, Account: m.msgAccount()}
		if s.hooks != nil && !r.messageHook(m, msg) {
			continue
		}
		if r.moderated(m, o, false) {
			continue
		}
		msgs = append(msgs, msg)
		senders = append(senders, m)
	}
	if len(msgs) > 0 {
		s.metrics.batchSize.observe(float64(len(msgs)))
	}
	if len(msgs) > 0 && s.broker != nil {
		// Cluster mode: the log orders and stores the run; every node,
		// this one included, puts it in its outbox when it comes back
		// (Deliver, deliver.go), so nothing goes in the outbox here.
		msgs, senders = r.publish(msgs, senders)
		r.noteOwn(msgs, senders) // delete.go
		r.notePublished(msgs, senders)
		clear(msgs)
		r.posting.msgs = msgs[:0]
		clear(senders)
		r.posting.senders = senders[:0]
		r.flush()
		return
	}
	if len(msgs) > 0 && s.history != nil {
		start := time.Now()
		err := s.history.Append(s.ctx, msgs)
		s.metrics.appendTime.observeSince(start)
		if err != nil {
			// Not stored means not broadcast: the senders learn it, nobody
			// else saw anything.
			s.metrics.appendErrors.Add(uint64(len(msgs)))
			s.log.Error("chat: storing messages failed", "room", r.name, "messages", len(msgs), "err", err)
			for _, m := range senders {
				r.out.notice(m, m.appendError(nil, codeDropped, "message not sent: the server could not store it"))
			}
			msgs = msgs[:0]
		}
	}
	r.noteOwn(msgs, senders) // delete.go
	for i, msg := range msgs {
		r.outMessageFrom(msg, senders[i].id)
	}
	clear(msgs)
	r.posting.msgs = msgs[:0]
	clear(senders)
	r.posting.senders = senders[:0]
	r.flush()
}

// messageHook runs Hooks.Message for msg from m and reports whether msg
// goes on (possibly with its text replaced). A message it stops is
// counted, and m is told why when there is something to say.
func (r *room) messageHook(m *member, msg *Message) bool {
	s := r.srv
	start := time.Now()
	u := m.user()
	res := s.hooks.Message(s.ctx, u, msg)
	s.metrics.hookMessage.observeSince(start)
	if res.Err != nil {
		if !s.cfg.DeliverOnHookFailure {
			// Fail closed: not stored, not delivered, the sender told
			// why. A command's own reason says more.
			reason := s.hookFailed(hookKindMessage, u, res.Err, "message refused")
			text := res.Reason
			if !res.Drop || text == "" {
				text = "message not sent: " + hookFailText(reason)
			}
			s.metrics.dropHook.Add(1)
			r.out.notice(m, m.appendError(nil, codeHookFailed, text))
			return false
		}
		s.hookFailed(hookKindMessage, u, res.Err, "carrying on ([scripting] on_failure = \"deliver\")")
	}
	if res.Replace {
		msg.Text = res.Text
	}
	if res.Drop || msg.Text == "" {
		s.metrics.dropHook.Add(1)
		if res.Reason != "" {
			r.out.notice(m, m.appendError(nil, dropCode(res.Code), res.Reason))
		}
		return false
	}
	return true
}

// moderated applies mutes and slow mode to a message of m (moderation.go)
// and reports whether it was refused (m is told why: "muted" or
// "slow_mode"). Before the hooks (pre) a mute refuses everything but
// commands, which the scripts answer (a muted member may still ask for
// /help); after them it refuses what would be stored, and slow mode
// counts only messages that would be stored. With no restriction and no
// slow mode anywhere this is one atomic load.
func (r *room) moderated(m *member, o *op, pre bool) bool {
	s := r.srv
	ix := s.mod.idx.Load()
	if ix.n == 0 && ix.slow == 0 {
		return false
	}
	// A mute is checked once: before the hooks, or after them for a
	// command (which a script may turn into a message).
	if ix.n > 0 && pre != (isCommand(o.text) && !o.action) {
		if why := s.muteRefusal(m); why != "" {
			r.out.notice(m, m.appendError(nil, codeMuted, why))
			return true
		}
	}
	if !pre && ix.slow > 0 {
		if why := r.slowRefusal(m, s.cfg.Clock.Now()); why != "" {
			r.out.notice(m, m.appendError(nil, codeSlowMode, why))
			return true
		}
	}
	return false
}
