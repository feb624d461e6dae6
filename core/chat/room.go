package chat

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// opKind is what a room operation does.
type opKind uint8

const (
	opMessage      opKind = iota // a chat message from m
	opJoin                       // m joins
	opLeave                      // m's connection closed
	opHistory                    // m pages backwards (JSON)
	opHistoryAfter               // m pages forwards (JSON), e.g. to finish a resume
	opRenamed                    // m was renamed by Host.Rename: announce it
	opSend                       // Host.Send: a notice to m alone
	opBroadcast                  // Host.Broadcast: a notice to the room
	opKick                       // Host.Kick
	opRedact                     // Host.Redact: tell the room
	opPresence                   // m asks for the full presence list (JSON)
	opAnnounce                   // the announce timer fired: send held join/leave notices
)

// op is one entry of a room's queue.
type op struct {
	kind opKind
	m    *member
	text string // message text, notice, kick reason, old name (opRenamed)
	t    time.Time
	id   uint64 // opHistory: before; opHistoryAfter: after; opRedact: id
	n    int    // opHistory, opHistoryAfter: limit
	// action marks an opMessage posted by Host.Action: a /me action.
	action bool
}

// room is one chat room and its ordering goroutine (see the package doc).
//
// Invariants:
//   - only the room goroutine adds or removes members, writes to members'
//     connections for room events, and calls Hooks/History.Append for the
//     room;
//   - members and names are written under mu (by the goroutine, and by
//     Host.Rename for names) so Host methods can read them without waiting
//     for the goroutine;
//   - a message is encoded and written only after History.Append returned.
type room struct {
	srv  *Server
	name string
	// prev is the previous incarnation of this room (it emptied and is
	// finishing its last batch); run waits for it so that history reads
	// and message order carry over.
	prev *room
	done chan struct{} // closed when run returns
	refs int           // connections assigned to the room; guarded by srv.mu

	qmu      sync.Mutex
	queue    []op
	spare    []op
	stopping bool // no more enqueues; run exits once the queue is empty
	wake     chan struct{}

	mu      sync.Mutex
	members []*member // join order
	names   nameTable // look-alike keys of the member names (names.go)

	// Owned by the goroutine.
	plain, json []*member // fan-out lists per format
	arena       []byte    // encoded frames of the current outbox
	spansPlain  []span
	spansJSON   []span
	outMsgs     int         // chat messages in the outbox (for messages_out)
	outArrived  []time.Time // when each chat message in the outbox reached the server
	lines       [][]byte
	msgs        []*Message
	senders     []*member // sender of msgs[i]
	release     []*member // one entry per finished message/history op
	evict       []*member // slow consumers found by the last writes
	presence    presenceDelta
	notices     []directFrame
	// Big rooms' broadcasts (fanout.go): the sweepers, started at the
	// first big broadcast, and the passes handed to them.
	sweepers   []*sweeper
	sweepLoad  []int // members per sweeper
	sweepWG    sync.WaitGroup
	passDone   chan *pass // completed passes, from the sweepers
	inflight   int        // passes handed over and not yet completed
	freePasses []*pass
	// held is set while join/leave announcements are being coalesced (a
	// big room, see Config.AnnounceBatchMembers): the pending presence
	// delta then outlives flushes and is sent, with one notice per kind,
	// when announceTimer fires (opAnnounce).
	held bool
	// announceArmed is set from arming announceTimer until its opAnnounce
	// is processed, so notices go out at most once per interval.
	announceArmed bool
	announceTimer Timer // from Config.Clock; nil until first needed; stopped when run returns
}

// span is one encoded frame inside room.arena.
type span struct{ start, end int }

// directFrame is a frame for one member, sent after the outbox.
type directFrame struct {
	m     *member
	frame []byte
}

func newRoom(s *Server, name string, prev *room) *room {
	return &room{
		srv:      s,
		name:     name,
		prev:     prev,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		names:    make(map[string]*member),
		presence: presenceDelta{at: -1},
	}
}

// enqueue adds o to the queue; it never blocks. It reports false when the
// room has stopped.
func (r *room) enqueue(o op) bool {
	r.qmu.Lock()
	if r.stopping {
		r.qmu.Unlock()
		return false
	}
	r.queue = append(r.queue, o)
	first := len(r.queue) == 1
	r.qmu.Unlock()
	if first {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// stop makes run return after it has processed everything already queued.
func (r *room) stop() {
	r.qmu.Lock()
	r.stopping = true
	r.qmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run is the room goroutine.
func (r *room) run() {
	defer r.srv.roomExited(r)
	if r.prev != nil {
		<-r.prev.done
		r.prev = nil
	}
	defer r.stopSweepers()
	for {
		select {
		case <-r.wake:
		case p := <-r.passDone: // nil (blocks) until the room is big
			r.completed(p)
			if len(r.evict) > 0 {
				r.flush() // removes the slow consumers it found
			}
			continue
		}
		for {
			r.qmu.Lock()
			batch := r.queue
			r.queue = r.spare[:0]
			r.spare = nil
			stopping := r.stopping
			r.qmu.Unlock()
			if len(batch) == 0 {
				r.qmu.Lock()
				r.spare = batch
				r.qmu.Unlock()
				if stopping {
					if r.announceTimer != nil {
						// A callback already running finds the room
						// stopped: enqueue refuses its op.
						r.announceTimer.Stop()
					}
					r.leaveAll()
					return
				}
				break
			}
			r.process(batch)
			clear(batch) // drop references to members and texts
			r.qmu.Lock()
			r.spare = batch[:0]
			r.qmu.Unlock()
		}
	}
}

// process handles one drained batch: runs of messages are hooked, stored
// and encoded together; control operations run between them in order.
func (r *room) process(batch []op) {
	for i := 0; i < len(batch); {
		if batch[i].kind == opMessage {
			j := i + 1
			for j < len(batch) && batch[j].kind == opMessage {
				j++
			}
			r.messages(batch[i:j])
			i = j
			continue
		}
		r.control(&batch[i])
		i++
	}
	r.flush()
	for i, m := range r.release {
		m.release()
		r.release[i] = nil
	}
	r.release = r.release[:0]
}

// messages runs hooks over a run of chat messages, appends the survivors to
// history in one call, and puts them in the outbox.
func (r *room) messages(ops []op) {
	s := r.srv
	msgs := r.msgs[:0]
	senders := r.senders[:0]
	for i := range ops {
		o := &ops[i]
		m := o.m
		r.release = append(r.release, m)
		if !m.joined.Load() {
			continue // refused, or left before its message came up
		}
		msg := &Message{Room: r.name, User: m.currentName(), Text: o.text, Time: o.t, Action: o.action}
		if s.hooks != nil {
			start := time.Now()
			u := m.user()
			res := s.hooks.Message(s.ctx, u, msg)
			s.metrics.hookMessage.observeSince(start)
			if res.Err != nil {
				if !s.cfg.DeliverOnHookFailure {
					// Fail closed: not stored, not delivered, the sender
					// told why. A command's own reason says more.
					reason := s.hookFailed(hookKindMessage, u, res.Err, "message refused")
					text := res.Reason
					if !res.Drop || text == "" {
						text = "message not sent: " + hookFailText(reason)
					}
					s.metrics.dropHook.Add(1)
					r.notices = append(r.notices, directFrame{m, m.appendError(nil, codeHookFailed, text)})
					continue
				}
				s.hookFailed(hookKindMessage, u, res.Err, "carrying on ([scripting] on_failure = \"deliver\")")
			}
			if res.Replace {
				msg.Text = res.Text
			}
			if res.Drop || msg.Text == "" {
				s.metrics.dropHook.Add(1)
				if res.Reason != "" {
					r.notices = append(r.notices, directFrame{m, m.appendError(nil, dropCode(res.Code), res.Reason)})
				}
				continue
			}
		}
		msgs = append(msgs, msg)
		senders = append(senders, m)
	}
	if len(msgs) > 0 && s.history != nil {
		s.metrics.batchSize.observe(sizeBuckets, float64(len(msgs)))
		start := time.Now()
		err := s.history.Append(s.ctx, msgs)
		s.metrics.appendTime.observeSince(start)
		if err != nil {
			// Not stored means not broadcast: the senders learn it, nobody
			// else saw anything.
			s.metrics.appendErrors.Add(uint64(len(msgs)))
			s.log.Error("chat: storing messages failed", "room", r.name, "messages", len(msgs), "err", err)
			for _, m := range senders {
				r.notices = append(r.notices, directFrame{m, m.appendError(nil, codeDropped, "message not sent: the server could not store it")})
			}
			msgs = msgs[:0]
		}
	} else if len(msgs) > 0 {
		s.metrics.batchSize.observe(sizeBuckets, float64(len(msgs)))
	}
	for _, msg := range msgs {
		r.outMessage(msg)
	}
	clear(msgs)
	r.msgs = msgs[:0]
	clear(senders)
	r.senders = senders[:0]
	r.flush()
}

// control handles one non-message operation. Those that write to one
// member wait for the broadcasts in flight first (see fanout.go); joins,
// leaves and the others only add to the outbox or the sweepers' inboxes.
func (r *room) control(o *op) {
	switch o.kind {
	case opJoin, opLeave, opBroadcast, opRedact, opAnnounce:
	default:
		r.drain()
	}
	switch o.kind {
	case opJoin:
		r.join(o.m)
	case opLeave:
		r.leave(o.m)
	case opHistory:
		r.release = append(r.release, o.m)
		r.historyBefore(o.m, o.id, o.n)
	case opHistoryAfter:
		r.release = append(r.release, o.m)
		r.historyAfter(o.m, o.id, o.n)
	case opRenamed:
		r.renamed(o.m, o.text)
	case opSend:
		if o.m.joined.Load() {
			r.settle()
			o.m.write(o.m.appendNotice(nil, r.name, o.text))
		}
	case opBroadcast:
		r.outSystem(o.text)
	case opKick:
		if o.m.joined.Load() {
			r.settle()
			if o.text != "" {
				o.m.write(o.m.appendNotice(nil, r.name, o.text))
			}
			_ = o.m.conn.Close(ws.StatusNormalClosure, closeReason(o.text))
			r.remove(o.m)
		}
	case opPresence:
		r.release = append(r.release, o.m)
		if o.m.joined.Load() {
			// Flushed first: the list is then the state after every
			// event m already has, and no pending delta follows it.
			r.settle()
			o.m.write(appendJSONPresence(nil, r.name, r.memberNames(nil)))
		}
	case opAnnounce:
		r.announceArmed = false
		r.releaseHeld()
	case opRedact:
		if len(r.json) > 0 {
			start := len(r.arena)
			r.arena = appendJSONRedact(r.arena, r.name, o.id)
			r.spansJSON = append(r.spansJSON, span{start, len(r.arena)})
		}
	}
}

// join admits m: the join hook, a unique name, the replay, then
// membership. No chat message is in the outbox at this point, so every
// message broadcast so far is in history (and in the replay) and every
// later one reaches m live.
func (r *room) join(m *member) {
	s := r.srv
	if m.gone.Load() {
		return
	}
	name := m.requested
	if name == "" {
		name = "guest-" + strconv.FormatUint(s.guestSeq.Add(1), 10)
	}
	if s.hooks != nil {
		u := m.user()
		u.Name = name
		start := time.Now()
		res := s.hooks.Join(s.ctx, u)
		s.metrics.hookJoin.observeSince(start)
		if res.Err != nil {
			if !s.cfg.DeliverOnHookFailure {
				reason := s.hookFailed(hookKindJoin, u, res.Err, "join refused")
				text := "join refused: " + hookFailText(reason)
				s.metrics.refused.Add(1)
				m.write(m.appendError(nil, codeHookFailed, text))
				_ = m.conn.Close(hookFailClose(reason), closeReason(text))
				return
			}
			s.hookFailed(hookKindJoin, u, res.Err, "carrying on ([scripting] on_failure = \"deliver\")")
		}
		if res.Refuse {
			reason := res.Reason
			if reason == "" {
				reason = "refused by the server"
			}
			s.refuse(m, ws.StatusPolicyViolation, reason)
			return
		}
		if res.Name != "" {
			if given, err := checkName(res.Name, s.cfg.MaxNameLength); err != nil {
				s.log.Warn("chat: join hook returned an invalid name; keeping the requested one",
					"room", r.name, "name", res.Name, "err", err)
			} else {
				name = given
			}
		}
	}
	if r.outMsgs > 0 {
		// Chat messages still in the outbox are in history already: they
		// must not reach m twice (replay and live). (messages flushes at
		// the end of every run, so this is a safety net.) Notices and
		// presence may stay: they are not in the replay, and leaving them
		// lets a burst of joins share one flush and one presence event.
		// (Given to the sweepers before m's add, they do not reach m.)
		r.flush()
	}

	r.mu.Lock()
	name = uniqueName(name, s.cfg.MaxNameLength, r.taken)
	m.name.Store(&name)
	r.names.add(name, m)
	r.members = append(r.members, m)
	m.joined.Store(true)
	r.mu.Unlock()
	held := r.holdAnnouncements()
	r.presenceJoined(name)

	// Welcome, replay (or resume) and the full presence list, as one
	// write, before any room-wide event about this join.
	var frames [][]byte
	if m.format == formatJSON {
		frames = append(frames, appendJSONWelcome(nil, r.name, name))
	}
	frames = append(frames, r.replay(m)...)
	if m.format == formatJSON {
		frames = append(frames, appendJSONPresence(nil, r.name, r.presenceBase(name)))
	}
	if len(frames) > 0 {
		m.writePrepared(ws.NewPrepared(ws.OpText, frames...))
	}

	if m.format == formatJSON {
		r.json = append(r.json, m)
	} else {
		r.plain = append(r.plain, m)
	}
	if r.sweepers != nil {
		r.assign(m)
	}
	if held {
		return // announced by releaseHeld
	}
	r.outPresence()
	r.outSystem(name + " joined")
}

// taken reports whether name is used in the room; r.mu must be held.
func (r *room) taken(name string) bool {
	return r.names.taken(name)
}

// replay returns the frames m gets from history on joining: the recent
// messages, or with ?since=ID everything after ID (and a gap notice).
func (r *room) replay(m *member) [][]byte {
	s := r.srv
	json := m.format == formatJSON
	if s.history == nil {
		if json {
			return [][]byte{appendJSONHistory(nil, r.name, "join", nil, true, false)}
		}
		return nil
	}
	var (
		msgs           []Message
		complete, more bool
		reason         = "join"
		err            error
	)
	if m.hasSince {
		reason = "since"
		msgs, complete, more, err = s.history.After(r.name, m.since, s.cfg.APILimit)
	} else if s.cfg.Replay > 0 {
		complete = true
		msgs, err = s.history.Recent(r.name, s.cfg.Replay+1)
		if len(msgs) > s.cfg.Replay {
			msgs, more = msgs[len(msgs)-s.cfg.Replay:], true
		}
	} else {
		complete = true
	}
	if err != nil {
		s.log.Error("chat: reading history for a newcomer failed", "room", r.name, "err", err)
		return [][]byte{m.appendError(nil, codeNoHistory, "history is unavailable right now")}
	}
	var frames [][]byte
	if json {
		if !complete {
			first := m.since + 1
			if len(msgs) > 0 {
				first = msgs[0].ID
			}
			frames = append(frames, appendJSONGap(nil, r.name, m.since, first))
		}
		return append(frames, appendJSONHistory(nil, r.name, reason, msgs, complete, more))
	}
	if !complete {
		frames = append(frames, appendPlainNotice(nil, "some messages were lost"))
	}
	var b []byte
	for i := range msgs {
		start := len(b)
		b = appendPlainReplay(b, &msgs[i])
		frames = append(frames, b[start:len(b):len(b)])
	}
	if more && m.hasSince {
		frames = append(frames, appendPlainNotice(nil, "more messages were missed than shown"))
	}
	if len(frames) > 0 {
		// What follows is live (JSON clients have the history event).
		frames = append(frames, appendPlainNotice(nil, plainEndOfHistory))
	}
	return frames
}

// historyLimit prepares a JSON history request: it reports false (and has
// told m why) when the request cannot be answered, and returns the page
// size to use. The outbox is flushed first so that every message m already
// has live is older than the page's snapshot of history.
func (r *room) historyLimit(m *member, limit int) (int, bool) {
	s := r.srv
	if !m.joined.Load() {
		return 0, false
	}
	r.settle()
	if s.history == nil {
		m.write(appendJSONError(nil, codeNoHistory, "this server keeps no history"))
		return 0, false
	}
	if limit <= 0 {
		limit = max(s.cfg.Replay, 1)
	}
	return min(limit, s.cfg.APILimit), true
}

// historyAfter answers a JSON history request with "after": the oldest
// messages newer than after, preceded by a gap event when some of the
// messages right after it no longer exist. A client resuming with
// ?since=ID repeats it with the last id of each batch while "more" is true.
func (r *room) historyAfter(m *member, after uint64, limit int) {
	s := r.srv
	limit, ok := r.historyLimit(m, limit)
	if !ok {
		return
	}
	msgs, complete, more, err := s.history.After(r.name, after, limit)
	if err != nil {
		s.log.Error("chat: reading history failed", "room", r.name, "err", err)
		m.write(appendJSONError(nil, codeNoHistory, "history is unavailable right now"))
		return
	}
	var frames [][]byte
	if !complete {
		first := after + 1
		if len(msgs) > 0 {
			first = msgs[0].ID
		}
		frames = append(frames, appendJSONGap(nil, r.name, after, first))
	}
	frames = append(frames, appendJSONHistory(nil, r.name, "after", msgs, complete, more))
	m.writePrepared(ws.NewPrepared(ws.OpText, frames...))
}

// historyBefore answers a JSON history request with "before" (or neither).
func (r *room) historyBefore(m *member, before uint64, limit int) {
	s := r.srv
	limit, ok := r.historyLimit(m, limit)
	if !ok {
		return
	}
	var msgs []Message
	var err error
	if before == 0 {
		msgs, err = s.history.Recent(r.name, limit+1)
	} else {
		msgs, err = s.history.Before(r.name, before, limit+1)
	}
	if err != nil {
		s.log.Error("chat: reading history failed", "room", r.name, "err", err)
		m.write(appendJSONError(nil, codeNoHistory, "history is unavailable right now"))
		return
	}
	more := false
	if len(msgs) > limit {
		msgs, more = msgs[len(msgs)-limit:], true
	}
	m.write(appendJSONHistory(nil, r.name, "before", msgs, true, more))
}

// leave removes m (if it had joined) and announces it. The outbox is not
// flushed first: what is in it was meant for m too, but m is gone.
func (r *room) leave(m *member) {
	r.remove(m)
}

// remove takes m out of the room at once and puts the announcement in the
// outbox. Besides leave, it serves members the server dropped itself
// (kicked, slow consumers): their connection's OnClose may come only after
// the closing handshake times out, and the room should not wait for that.
func (r *room) remove(m *member) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	r.mu.Lock()
	name := m.currentName()
	r.names.remove(name, m)
	r.members = removeMember(r.members, m)
	m.joined.Store(false)
	r.mu.Unlock()
	if m.format == formatJSON {
		r.json = removeMember(r.json, m)
	} else {
		r.plain = removeMember(r.plain, m)
	}
	if r.sweepers != nil {
		r.unassign(m)
	}
	held := r.holdAnnouncements()
	r.presenceLeft(name)
	if !held { // else announced by releaseHeld
		r.outSystem(name + " left")
		r.outPresence()
	}
	if s.hooks != nil {
		u := m.user()
		start := time.Now()
		err := s.hooks.Leave(s.ctx, u)
		s.metrics.hookLeave.observeSince(start)
		if err != nil {
			s.hookFailed(hookKindLeave, u, err, "the member has left regardless")
		}
	}
}

// leaveAll runs as the room goroutine exits. A room stops with members
// still in it only at Shutdown (their connections are closed after the
// rooms are done, and their leave operations find the room stopped), so
// Hooks.Leave is called here: scripts see a leave for every join. Nothing
// is announced, the connections are about to close with 1001. The hooks
// get srv.ctx, which Shutdown cancels when its own context ends, so this
// is bounded by the shutdown deadline.
func (r *room) leaveAll() {
	s := r.srv
	r.drain()
	r.mu.Lock()
	left := r.members
	r.members = nil
	clear(r.names)
	for _, m := range left {
		m.joined.Store(false)
	}
	r.mu.Unlock()
	r.plain, r.json = nil, nil
	if s.hooks == nil {
		return
	}
	for _, m := range left {
		start := time.Now()
		u := m.user()
		err := s.hooks.Leave(s.ctx, u)
		s.metrics.hookLeave.observeSince(start)
		if err != nil {
			s.hookFailed(hookKindLeave, u, err, "the member has left regardless")
		}
	}
}

// renamed announces a rename already made by Host.Rename.
func (r *room) renamed(m *member, old string) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	name := m.currentName()
	// The pending presence delta names old, if anything: it is closed
	// here so that the rename event follows it and later joins and leaves
	// go into a new delta. Held announcements go out first for the same
	// reason (they name old).
	r.releaseHeld()
	r.closePresence()
	if len(r.json) > 0 {
		start := len(r.arena)
		r.arena = appendJSONRename(r.arena, r.name, old, name)
		r.spansJSON = append(r.spansJSON, span{start, len(r.arena)})
	}
	r.outSystem(old + " is now known as " + name)
	if s.hooks != nil {
		start := time.Now()
		u := m.user()
		err := s.hooks.Rename(s.ctx, u, old)
		s.metrics.hookRename.observeSince(start)
		if err != nil {
			s.hookFailed(hookKindRename, u, err, "the rename stands regardless")
		}
	}
}

func removeMember(list []*member, m *member) []*member {
	for i, x := range list {
		if x == m {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			return list[:len(list)-1]
		}
	}
	return list
}

// outMessage puts a stored chat message in the outbox.
func (r *room) outMessage(msg *Message) {
	r.outMsgs++
	r.outArrived = append(r.outArrived, msg.Time) // when it reached the server
	if len(r.plain) > 0 {
		start := len(r.arena)
		r.arena = appendPlainChat(r.arena, msg)
		r.spansPlain = append(r.spansPlain, span{start, len(r.arena)})
	}
	if len(r.json) > 0 {
		start := len(r.arena)
		r.arena = appendJSONMessage(r.arena, msg)
		r.spansJSON = append(r.spansJSON, span{start, len(r.arena)})
	}
}

// outSystem puts a system notice in the outbox.
func (r *room) outSystem(text string) {
	if len(r.plain) > 0 {
		start := len(r.arena)
		r.arena = appendPlainNotice(r.arena, text)
		r.spansPlain = append(r.spansPlain, span{start, len(r.arena)})
	}
	if len(r.json) > 0 {
		start := len(r.arena)
		r.arena = appendJSONSystem(r.arena, r.name, text, nowUTC())
		r.spansJSON = append(r.spansJSON, span{start, len(r.arena)})
	}
}

// presenceDelta is the presence change of the current outbox: who joined
// and who left since the last delta was encoded (net: a name that joined
// and left again within it is in neither list). Members who were already
// in the room get only this small event instead of the whole list.
//
// Invariant: B − left + joined = the room's member names now, where B is
// the member names when the delta began (every change is recorded, with
// or without JSON members). A newcomer's full list is B plus itself
// (presenceBase), so the delta it receives with everyone else brings it
// to the same state: clients apply "left" first (remove if present), then
// "joined" (add if absent), and both operations are idempotent.
//
// Coalescing (room.held) only makes a delta last longer: it begins when
// the room starts holding (the delta before it is closed first, so B is
// the names just before the first held change) and is sent when the held
// announcements are released, not at every flush. The invariant, and so
// the newcomer's argument, is unchanged: a newcomer during the hold gets
// B plus itself and the released delta brings it to the room's state. A
// member who asks for the full list during the hold gets the current
// names N = B − left + joined; applying the delta to N gives N again,
// since every name in left that is in N is also in joined (applied
// after), and every name in joined is in N. The notices are written from
// the same lists (net, left before joined), so plain clients read the
// same story: a name that joined and left within the hold is in neither.
type presenceDelta struct {
	at     int // index in spansJSON of the reserved event, or -1
	joined []string
	left   []string
}

// holdAnnouncements runs for a join or leave that has just changed the
// members, before the change is recorded in the presence delta. It
// reports whether the change's announcement is held: the room has more
// than AnnounceBatchMembers members and coalescing is on. Starting a hold
// closes the delta so far (its announcements are already in the outbox)
// and arms the timer; a room that shrank to the threshold sends what it
// held first, so that announcements keep their order.
func (r *room) holdAnnouncements() bool {
	cfg := &r.srv.cfg
	big := cfg.AnnounceInterval > 0 && len(r.members) > cfg.AnnounceBatchMembers
	switch {
	case big && !r.held:
		r.closePresence()
		r.held = true
		r.armAnnounce()
	case !big && r.held:
		r.releaseHeld()
	}
	return big
}

// armAnnounce makes the room get an opAnnounce after AnnounceInterval,
// unless one is already due. The timer's callback only enqueues (it never
// touches room state) and finds the room stopped once run has returned.
func (r *room) armAnnounce() {
	if r.announceArmed {
		return
	}
	r.announceArmed = true
	d := r.srv.cfg.AnnounceInterval
	if r.announceTimer == nil {
		r.announceTimer = r.srv.cfg.Clock.AfterFunc(d, func() { r.enqueue(op{kind: opAnnounce}) })
	} else {
		r.announceTimer.Reset(d)
	}
}

// releaseHeld puts the held announcements in the outbox: the presence
// delta (reserved here, encoded at flush) and one notice per kind, left
// before joined like the delta is applied. A hold that netted out to no
// change sends nothing.
func (r *room) releaseHeld() {
	if !r.held {
		return
	}
	r.held = false
	p := &r.presence
	r.outPresence()
	if len(p.left) > 0 {
		r.outSystem(announceText(p.left, "left"))
	}
	if len(p.joined) > 0 {
		r.outSystem(announceText(p.joined, "joined"))
	}
}

// announceShown is how many names a coalesced notice lists before
// "and N others".
const announceShown = 3

// announceText is a coalesced notice: "alice joined", "alice and bob
// joined", "alice, bob and carol left", "alice, bob, carol and 12 others
// joined".
func announceText(names []string, verb string) string {
	var b strings.Builder
	shown := min(len(names), announceShown)
	for i, n := range names[:shown] {
		switch {
		case i == 0:
		case i == shown-1 && shown == len(names):
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	if rest := len(names) - shown; rest == 1 {
		b.WriteString(" and 1 other")
	} else if rest > 1 {
		b.WriteString(" and " + strconv.Itoa(rest) + " others")
	}
	b.WriteString(" " + verb)
	return b.String()
}

// presenceJoined records that name joined.
func (r *room) presenceJoined(name string) {
	r.presence.joined = append(r.presence.joined, name)
}

// presenceLeft records that name left. A name that joined within the same
// delta is dropped from it instead (the left list is applied first, so
// recording both would leave the name listed).
func (r *room) presenceLeft(name string) {
	p := &r.presence
	if i := slices.Index(p.joined, name); i >= 0 {
		p.joined = slices.Delete(p.joined, i, i+1)
		return
	}
	p.left = append(p.left, name)
}

// presenceBase returns the full list for a newcomer called self: the
// members when the pending delta began (join order, those who left since
// at the end), then self. The delta that follows in the outbox turns it
// into the current list.
func (r *room) presenceBase(self string) []string {
	p := &r.presence
	names := make([]string, 0, len(r.members)+len(p.left))
	for _, m := range r.members {
		n := m.currentName()
		if n != self && !slices.Contains(p.joined, n) {
			names = append(names, n)
		}
	}
	for _, n := range p.left {
		if n != self {
			names = append(names, n)
		}
	}
	return append(names, self)
}

// memberNames appends the member names in join order.
func (r *room) memberNames(names []string) []string {
	for _, m := range r.members {
		names = append(names, m.currentName())
	}
	return names
}

// outPresence reserves the outbox's place for the presence delta (JSON
// only). Only one per outbox: its content is written when the outbox is
// flushed (or a rename closes it), so a burst of joins or leaves costs one
// small event, not one per change.
func (r *room) outPresence() {
	if len(r.json) == 0 || r.presence.at >= 0 {
		return
	}
	r.presence.at = len(r.spansJSON)
	r.spansJSON = append(r.spansJSON, span{})
}

// closePresence encodes the reserved delta (an empty one is dropped) and
// starts a new one.
func (r *room) closePresence() {
	p := &r.presence
	if p.at >= 0 {
		start := len(r.arena)
		if len(p.joined) > 0 || len(p.left) > 0 {
			r.arena = appendJSONPresenceDelta(r.arena, r.name, p.joined, p.left)
		}
		r.spansJSON[p.at] = span{start, len(r.arena)}
		p.at = -1
	}
	clear(p.joined)
	clear(p.left)
	p.joined, p.left = p.joined[:0], p.left[:0]
}

// flush writes the outbox: each format's frames are encoded once into one
// Prepared and the same Prepared goes to every member of that format (one
// write per member per batch). Then the queued per-member notices follow.
// Members found to be slow consumers are removed, and their departure is
// written too.
func (r *room) flush() {
	for {
		r.writeOutbox()
		r.reap()
		if len(r.evict) == 0 {
			return
		}
		m := r.evict[len(r.evict)-1]
		r.evict[len(r.evict)-1] = nil
		r.evict = r.evict[:len(r.evict)-1]
		r.remove(m)
	}
}

// settle flushes the outbox and waits until every member has been
// written all of it: what follows is a write to one member or a change of
// the members (see fanout.go).
func (r *room) settle() {
	r.flush()
	r.drain()
}

func (r *room) writeOutbox() {
	s := r.srv
	if !r.held {
		r.closePresence()
	}
	plain := r.prepare(r.plain, r.spansPlain)
	json := r.prepare(r.json, r.spansJSON)
	if plain != nil || json != nil {
		s.metrics.messagesOut.Add(uint64(r.outMsgs * (len(r.plain) + len(r.json))))
		if plain != nil {
			s.metrics.framesOut.Add(uint64(plain.Len() * len(r.plain)))
		}
		if json != nil {
			s.metrics.framesOut.Add(uint64(json.Len() * len(r.json)))
		}
		start := time.Now()
		if r.bigRoom() {
			r.submit(plain, json, start)
		} else {
			r.writeAll(r.plain, plain)
			r.writeAll(r.json, json)
			end := time.Now()
			s.metrics.broadcastTime.observe(durationBuckets, end.Sub(start).Seconds())
			for _, t := range r.outArrived {
				s.metrics.messageDelay.observe(durationBuckets, end.Sub(t).Seconds())
			}
		}
	}
	clear(r.outArrived)
	r.outArrived = r.outArrived[:0]
	r.arena = r.arena[:0]
	r.spansPlain = r.spansPlain[:0]
	r.spansJSON = r.spansJSON[:0]
	r.outMsgs = 0
	if len(r.notices) > 0 {
		r.drain() // a notice follows the broadcasts before it
	}
	for i, n := range r.notices {
		n.m.write(n.frame)
		r.notices[i] = directFrame{}
	}
	r.notices = r.notices[:0]
}

// prepare encodes the outbox's frames for one format once, or returns nil
// when that format has no members or nothing to send.
func (r *room) prepare(members []*member, spans []span) *ws.Prepared {
	if len(members) == 0 {
		return nil
	}
	lines := r.lines[:0]
	for _, sp := range spans {
		if sp.start < sp.end { // an empty presence delta is dropped
			lines = append(lines, r.arena[sp.start:sp.end])
		}
	}
	if len(lines) == 0 {
		return nil
	}
	p := ws.NewPrepared(ws.OpText, lines...)
	clear(lines)
	r.lines = lines[:0]
	return p
}

// writeAll writes p (if any) to members from the room goroutine.
func (r *room) writeAll(members []*member, p *ws.Prepared) {
	if p == nil {
		return
	}
	for _, m := range members {
		if m.check(m.conn.WritePrepared(p)) {
			r.evict = append(r.evict, m)
		}
	}
}

// closeReason fits text into a close frame's reason (at most 123 bytes,
// RFC 6455 section 5.5), cutting at a character boundary. The reason is
// made safe like a plain-text line: clients print it.
func closeReason(text string) string {
	text = string(appendPlainText(nil, text))
	if len(text) <= 123 {
		return text
	}
	i := 123
	for i > 0 && text[i]&0xC0 == 0x80 {
		i--
	}
	return text[:i]
}

func nowUTC() time.Time { return time.Now().UTC() }
