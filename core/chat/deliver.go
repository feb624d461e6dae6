package chat

import (
	"fmt"
	"time"
)

// Cluster mode (issue 15; broker_seams.go, docs/cluster.md): what a node
// does with the records its consumer reads back from the cluster's log.
// The consumer (cmd/moonchat) applies each record to the node's replica
// (the History) first, and only then calls Deliver or Redacted, from one
// goroutine, in the log's order. A room with a goroutine on this node gets
// the batch as an operation (opDeliver) and puts it in its outbox exactly
// as post does after History.Append on a single node; a conversation's
// message is handed to the local connections of both accounts as
// deliverDirect does. A room without a goroutine here has nobody to tell:
// its messages are in the replica for the next join.

// delivery is a cluster node's room's position in the room's log: what its
// members have been given, live or in a replay.
//
// Invariants (cluster mode; a single node leaves it zero and unused):
//   - owned by the room goroutine;
//   - last is the highest id of the room that is settled here: put in the
//     outbox by an opDeliver, or already in the replica when the room
//     goroutine read the room's end as it started (startDelivered, before
//     its first operation). known is false until that read succeeded or a
//     delivery set last. A read that failed is tried again only at a join
//     into a room without members (ensureDelivered), never at a delivery:
//     read after a record was applied, it would take that record's id as
//     settled although its opDeliver is still queued;
//   - every message with id <= last is in the replica, or was redacted or
//     pruned there: the consumer applies a record before it calls Deliver,
//     and the log gives a room's ids in order;
//   - every message with id > last reaches this goroutine as an opDeliver:
//     its record is applied after the read that set last (or after the
//     delivery that did), which follows the room's registration in
//     Server.rooms, so Deliver, which looks the room up after applying,
//     finds it and enqueues;
//   - hence, as the replay, since-resume and history pages read on this
//     goroutine serve only ids <= last (room.readPage) and opDeliver puts
//     in the outbox only ids > last and raises last to each, a member gets
//     every message exactly once: in its replay (id <= last when it
//     joined) or live (id > last then). A member resuming with ?since=ID
//     beyond last (it saw them live on a node further along) has
//     member.liveAfter set: the live messages up to ID are left out of
//     what it is written (ignoreAlts), so it gets nothing twice either;
//   - published maps the ids this room published to their sender's
//     session until they are delivered (or found settled), so that a
//     guest's ignore list (by session) hides the messages of the guest it
//     ignores live on the node where the guest posts.
type delivery struct {
	known     bool
	last      uint64
	published map[uint64]uint64
}

// startDelivered reads the room's end from the replica as the room
// goroutine starts (cluster mode), before its first operation: every
// record applied after it comes as an opDeliver (delivery).
func (r *room) startDelivered() {
	if r.srv.broker != nil {
		r.readDelivered()
	}
}

// ensureDelivered reports whether the room's end is known (room
// goroutine; cluster mode), reading it again when the read at the start
// failed and the room has no members yet: nobody can then miss a
// delivery the read would count as settled. Otherwise the caller fails
// its read (a replay or a page: "history unavailable").
func (r *room) ensureDelivered() bool {
	if r.dl.known {
		return true
	}
	if len(r.roster.plain)+len(r.roster.json) > 0 {
		return false
	}
	return r.readDelivered()
}

// readDelivered sets last to the newest id the replica holds for the
// room, and reports whether it could.
func (r *room) readDelivered() bool {
	d := &r.dl
	s := r.srv
	if l, ok := s.history.(LastIDer); ok {
		d.last, d.known = l.LastID(r.name), true
		return true
	}
	msgs, err := s.history.Recent(r.name, 1)
	if err != nil {
		s.log.Error("chat: reading a room's newest id failed", "room", r.name, "err", err)
		return false
	}
	d.known = true
	if len(msgs) > 0 {
		d.last = msgs[0].ID
	}
	return true
}

// Deliver hands a batch the cluster's log holds for key (a room, or a
// conversation's ConversationKey) to the members on this node. The
// consumer calls it from one goroutine, in the log's order, after
// applying the batch to the node's replica (the History): that order is
// what makes replay and live meet without overlap or hole (delivery). It
// never blocks on a room. Deliver keeps msgs: the caller must not change
// them afterwards. Without a Broker, or after Shutdown, it does nothing.
func (s *Server) Deliver(key string, msgs []Message) {
	if s.broker == nil || len(msgs) == 0 {
		return
	}
	if IsConversation(key) {
		s.deliverConversation(key, msgs) // direct.go
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if r := s.rooms[key]; r != nil {
		r.enqueue(op{kind: opDeliver, delivered: msgs})
	}
}

// Redacted tells the members on this node that message id of key was
// deleted, once the consumer applied the redaction to the replica. Only
// rooms have members to tell (direct messages are not redacted).
func (s *Server) Redacted(key string, id uint64) {
	if s.broker == nil || IsConversation(key) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if r := s.rooms[key]; r != nil {
		r.enqueue(op{kind: opRedact, msgID: id})
	}
}

// Noticed hands in a room notice published by any node of the cluster,
// this one included (NoticeBroker, Host.Broadcast): this node's members of
// room get it, as a single node's broadcast. A room without members here
// has nobody to tell.
func (s *Server) Noticed(room, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if r := s.rooms[room]; r != nil {
		r.enqueue(op{kind: opBroadcast, notice: text})
	}
}

// deliver puts a delivered batch in the outbox (opDeliver): the messages
// this room's members have not been given yet, as post does after Append.
func (r *room) deliver(o *op) {
	d := &r.dl
	// Not known (the replica could not be read): deliver it all. No
	// replay could be read meanwhile (ensureDelivered), so nothing is
	// given twice; the first delivery makes last known.
	known := d.known
	for i := range o.delivered {
		msg := &o.delivered[i]
		session := d.published[msg.ID]
		if session != 0 {
			delete(d.published, msg.ID)
		}
		if known && msg.ID <= d.last {
			continue // in the replica before this room read its end: replayed
		}
		r.outMessageFrom(msg, session)
		d.last, d.known, known = msg.ID, true, true
	}
}

// notePublished records the sessions of the messages post published, for
// deliver (ignore lists match guests by session).
func (r *room) notePublished(msgs []*Message, senders []*member) {
	d := &r.dl
	for i, msg := range msgs {
		if msg.ID == 0 || senders[i].account != "" {
			continue // accounts are matched by account id
		}
		if d.published == nil {
			d.published = make(map[uint64]uint64)
		}
		d.published[msg.ID] = senders[i].id
	}
}

// publish publishes a run of accepted messages of the room (post, cluster
// mode) and tells the senders of those that were not published why. It
// returns the messages published, with their senders, in place.
func (r *room) publish(msgs []*Message, senders []*member) ([]*Message, []*member) {
	s := r.srv
	if !s.broker.Connected() {
		r.unavailable(senders)
		return msgs[:0], senders[:0]
	}
	start := time.Now()
	err := s.broker.Publish(s.ctx, r.name, msgs)
	s.metrics.appendTime.observeSince(start)
	if err == nil {
		return msgs, senders
	}
	// The messages with an id were published (they will come back
	// through Deliver); the others were not.
	var lost []*member
	kept := 0
	for i, msg := range msgs {
		if msg.ID != 0 {
			msgs[kept], senders[kept] = msg, senders[i]
			kept++
		} else {
			lost = append(lost, senders[i])
		}
	}
	clear(msgs[kept:])
	if !s.broker.Connected() {
		s.log.Warn("chat: publishing messages failed: the cluster connection is down", "room", r.name, "messages", len(lost), "err", err)
		r.unavailable(lost)
	} else {
		s.metrics.appendErrors.Add(uint64(len(lost)))
		s.log.Error("chat: publishing messages failed", "room", r.name, "messages", len(lost), "err", err)
		for _, m := range lost {
			r.out.notice(m, m.appendError(nil, codeDropped, "message not sent: the server could not store it"))
		}
	}
	clear(senders[kept:])
	return msgs[:kept], senders[:kept]
}

// unavailable tells senders that their messages were not sent because
// the node lost its cluster connection, and counts them.
func (r *room) unavailable(senders []*member) {
	s := r.srv
	if len(senders) == 0 {
		return
	}
	s.metrics.dropUnavailable.Add(uint64(len(senders)))
	s.log.Debug("chat: messages refused: no cluster connection", "room", r.name, "messages", len(senders))
	for _, m := range senders {
		r.out.notice(m, m.appendError(nil, codeUnavailable, unavailableText))
	}
}

// unavailableText is what a sender is told when its message was refused
// for want of a cluster connection.
var unavailableText = "message not sent: " + ErrUnavailable.Error()

// caughtUp ends the filtering of members that resumed beyond the room's
// last delivered id once the room has delivered up to their resume point
// (writeOutbox, after the alternative encodings of the batch that may
// still hold ids up to it were made).
func (r *room) caughtUp() {
	o := &r.out
	var done []*member
	for _, m := range o.ignorers {
		if m.liveAfter != 0 && m.liveAfter <= r.dl.last {
			done = append(done, m)
		}
	}
	for _, m := range done {
		m.liveAfter = 0
		r.ignoresChanged(m)
	}
}

// redactInCluster is Server.redact in cluster mode: the message must be in
// this node's replica (else ErrNoSuchMessage), and the redaction goes
// through the log: the replica loses it and the members are told when it
// comes back (Redacted), on every node alike.
func (s *Server) redactInCluster(room string, id uint64) error {
	if err := s.messageExists(room, id); err != nil {
		return err
	}
	if !s.broker.Connected() {
		return fmt.Errorf("redact %s/%d: %w", room, id, ErrUnavailable)
	}
	if err := s.broker.Redact(s.ctx, room, id); err != nil {
		if !s.broker.Connected() {
			return fmt.Errorf("redact %s/%d: %w: %w", room, id, ErrUnavailable, err)
		}
		return fmt.Errorf("redact %s/%d: %w", room, id, err)
	}
	return nil
}
