package chat

import (
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// outbox is what one room batch sends: the frames the batch produced for
// the whole room (chat messages, notices, presence, renames, redactions),
// encoded into one arena, and the frames for single members that follow
// them. At the end of every batch (and before anything that must follow
// it) the room flushes it: each wire format's frames become one Prepared
// that is handed to every member of that format, so a message is encoded
// once per format however many members read it.
//
// Invariants:
//   - owned by the room goroutine;
//   - every span indexes arena; a span with start == end is a reserved
//     place (the presence delta) that stayed empty, and is skipped;
//   - a format's frames are encoded only when that format has members
//     (the to* arguments), so a format nobody reads costs nothing;
//   - chatMsgs counts the chat messages in it and arrived holds when each
//     reached the server (for the message-delay metric);
//   - notices go out after the room-wide frames, and after every earlier
//     broadcast has been written (room.waitForPasses).
type outbox struct {
	arena    []byte
	plain    []span // frames for plain-text members, in order
	json     []span // frames for JSON members, in order
	chatMsgs int
	arrived  []time.Time
	notices  []directFrame
	lines    [][]byte // scratch of prepare
	// from is the sender of each chat message, kept only while ignorers
	// is not empty; ignorers are the members whose ignore list is not
	// empty (ignore.go).
	from     []msgFrom
	ignorers []*member
}

// span is one encoded frame inside outbox.arena.
type span struct{ start, end int }

// directFrame is a frame for one member, sent after the outbox.
type directFrame struct {
	m     *member
	frame []byte
}

// addMessage puts a stored chat message in the outbox.
func (o *outbox) addMessage(msg *Message, toPlain, toJSON bool) {
	o.chatMsgs++
	o.arrived = append(o.arrived, msg.Time) // when it reached the server
	if toPlain {
		start := len(o.arena)
		o.arena = appendPlainChat(o.arena, msg)
		o.plain = append(o.plain, span{start, len(o.arena)})
	}
	if toJSON {
		start := len(o.arena)
		o.arena = appendJSONMessage(o.arena, msg)
		o.json = append(o.json, span{start, len(o.arena)})
	}
}

// addSystem puts a system notice in the outbox.
func (o *outbox) addSystem(room, text string, toPlain, toJSON bool) {
	if toPlain {
		start := len(o.arena)
		o.arena = appendPlainNotice(o.arena, text)
		o.plain = append(o.plain, span{start, len(o.arena)})
	}
	if toJSON {
		start := len(o.arena)
		o.arena = appendJSONSystem(o.arena, room, text, nowUTC())
		o.json = append(o.json, span{start, len(o.arena)})
	}
}

// addRename puts a JSON rename event in the outbox (plain-text members
// read the notice that goes with it).
func (o *outbox) addRename(room, old, name string) {
	start := len(o.arena)
	o.arena = appendJSONRename(o.arena, room, old, name)
	o.json = append(o.json, span{start, len(o.arena)})
}

// addRedact puts a JSON redact event in the outbox.
func (o *outbox) addRedact(room string, id uint64) {
	start := len(o.arena)
	o.arena = appendJSONRedact(o.arena, room, id)
	o.json = append(o.json, span{start, len(o.arena)})
}

// reserveJSON keeps a place among the JSON frames, filled later by
// fillJSONPresence, and returns its index.
func (o *outbox) reserveJSON() int {
	o.json = append(o.json, span{})
	return len(o.json) - 1
}

// fillJSONPresence makes the reserved place at i a presence delta, or
// leaves it empty (skipped by prepare) when the delta is no change.
func (o *outbox) fillJSONPresence(i int, room string, joined, left []string, accs []accountInfo) {
	start := len(o.arena)
	if len(joined) > 0 || len(left) > 0 {
		o.arena = withAccounts(appendJSONPresenceDelta(o.arena, room, joined, left), accs)
	}
	o.json[i] = span{start, len(o.arena)}
}

// notice queues a frame for m alone, written after the outbox.
func (o *outbox) notice(m *member, frame []byte) {
	o.notices = append(o.notices, directFrame{m, frame})
}

// prepare encodes the frames of spans once, or returns nil when the
// format has no members or nothing to send.
func (o *outbox) prepare(members int, spans []span) *ws.Prepared {
	if members == 0 {
		return nil
	}
	lines := o.lines[:0]
	for _, sp := range spans {
		if sp.start < sp.end { // an empty presence delta is dropped
			lines = append(lines, o.arena[sp.start:sp.end])
		}
	}
	if len(lines) == 0 {
		return nil
	}
	p := ws.NewPrepared(ws.OpText, lines...)
	clear(lines)
	o.lines = lines[:0]
	return p
}

// resetBroadcast empties the room-wide part, keeping the buffers.
func (o *outbox) resetBroadcast() {
	clear(o.arrived)
	o.arrived = o.arrived[:0]
	o.arena = o.arena[:0]
	o.plain = o.plain[:0]
	o.json = o.json[:0]
	o.chatMsgs = 0
	clear(o.from)
	o.from = o.from[:0]
}

// outMessageFrom puts a stored chat message sent by session (0: not a
// member's) in the outbox, for each wire format that has members.
func (r *room) outMessageFrom(msg *Message, session uint64) {
	o := &r.out
	toPlain, toJSON := len(r.roster.plain) > 0, len(r.roster.json) > 0
	if len(o.ignorers) > 0 {
		f := msgFrom{session: session, id: msg.ID, plain: -1, json: -1}
		if msg.Account != nil {
			f.account = msg.Account.ID
		}
		if toPlain {
			f.plain = len(o.plain)
		}
		if toJSON {
			f.json = len(o.json)
		}
		o.from = append(o.from, f)
	}
	o.addMessage(msg, toPlain, toJSON)
}

// outSystem puts a system notice in the outbox, for each wire format that
// has members.
func (r *room) outSystem(text string) {
	r.out.addSystem(r.name, text, len(r.roster.plain) > 0, len(r.roster.json) > 0)
}

// flush writes the outbox (writeOutbox) and removes the members those
// writes found to be slow consumers; their departure goes into the outbox
// again, so it loops until no write found one.
func (r *room) flush() {
	for {
		r.writeOutbox()
		r.collectPasses()
		if len(r.evict) == 0 {
			return
		}
		m := r.evict[len(r.evict)-1]
		r.evict[len(r.evict)-1] = nil
		r.evict = r.evict[:len(r.evict)-1]
		r.remove(m)
	}
}

// flushAndWait flushes the outbox and waits until every member has been
// written all of it: what follows is a write to one member or a change of
// the members (see fanout.go).
func (r *room) flushAndWait() {
	r.flush()
	r.waitForPasses()
}

// writeOutbox encodes the outbox once per wire format and writes it: to
// every member from here in a small room, through the sweepers in a big
// one (fanout.go). The notices for single members follow, after every
// broadcast before them has been written.
func (r *room) writeOutbox() {
	s := r.srv
	o := &r.out
	plainMembers, jsonMembers := r.roster.plain, r.roster.json
	if !r.presence.held {
		r.closePresence()
	}
	plain := o.prepare(len(plainMembers), o.plain)
	json := o.prepare(len(jsonMembers), o.json)
	var alts []altFrame
	if len(o.from) > 0 { // only while someone in the room ignores someone
		alts = r.ignoreAlts()
		if r.srv.broker != nil {
			r.caughtUp() // deliver.go
		}
	}
	if plain != nil || json != nil {
		s.metrics.messagesOut.Add(uint64(o.chatMsgs * (len(plainMembers) + len(jsonMembers))))
		if plain != nil {
			s.metrics.framesOut.Add(uint64(plain.Len() * len(plainMembers)))
		}
		if json != nil {
			s.metrics.framesOut.Add(uint64(json.Len() * len(jsonMembers)))
		}
		start := time.Now()
		if r.bigRoom() {
			r.submit(plain, json, start, alts)
		} else {
			r.writeAll(plainMembers, plain, alts)
			r.writeAll(jsonMembers, json, alts)
			end := time.Now()
			s.metrics.broadcastTime.observe(end.Sub(start).Seconds())
			for _, t := range o.arrived {
				s.metrics.messageDelay.observe(end.Sub(t).Seconds())
			}
		}
	}
	o.resetBroadcast()
	if len(o.notices) > 0 {
		r.waitForPasses() // a notice follows the broadcasts before it
	}
	for i, n := range o.notices {
		n.m.write(n.frame)
		o.notices[i] = directFrame{}
	}
	o.notices = o.notices[:0]
}

// writeAll writes p (if any) to members from the room goroutine, or an
// ignoring member's own encoding among alts; the slow consumers it finds
// are left in r.evict for flush.
func (r *room) writeAll(members []*member, p *ws.Prepared, alts []altFrame) {
	if p == nil {
		return
	}
	for _, m := range members {
		mp := p
		if len(alts) > 0 {
			if mp = altFor(alts, m, p); mp == nil {
				continue
			}
		}
		if m.slowConsumer(m.conn.WritePrepared(mp)) {
			r.evict = append(r.evict, m)
		}
	}
}
