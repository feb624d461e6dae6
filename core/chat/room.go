package chat

import (
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// This file is the room itself: its queue and its goroutine, which takes
// the queue in batches and hands each operation to the part of the room
// that owns it: posting (post.go), membership (membership.go), presence and
// announcements (presence.go), history requests (paging.go), the outbox
// (outbox.go) and, in big rooms, the sweepers (fanout.go).

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
	opRoles                      // Host.Grant/Revoke changed m's roles: tell the room
	opExpired                    // m's credentials expired: close it with 4001 (expiry.go)
	opAdminPost                  // the admin API posts a message (admin.go)
	opSettings                   // Host.SetRoomSettings: tell the room (moderation.go)
	opIgnores                    // m's ignore list changed (ignore.go)
	opTyping                     // m is typing: tell the room's other JSON members (typing.go)
	opDirect                     // m sends a direct message (direct.go)
	opDirectOut                  // a stored direct message for m: write it (direct.go)
	opConvList                   // m asks for its conversations (JSON, direct_read.go)
	opDirectPage                 // m pages a conversation (JSON, direct_read.go)
	opDeliver                    // cluster mode: a batch read back from the log (deliver.go)
	opRemote                     // cluster presence: another node's member joined, left or changed (remote.go)
)

// op is one entry of a room's queue. Each field holds one thing, for the
// kinds named at it; the others leave it zero.
type op struct {
	kind opKind
	m    *member // the member concerned (none for opBroadcast, opRedact, opAnnounce)

	// opMessage: the text sent, when it reached the server, and whether
	// it is a /me action (Host.Action).
	text   string
	at     time.Time
	action bool

	// notice is shown to m (opSend; opKick: the reason, may be empty) or
	// to the room (opBroadcast).
	notice string
	// oldName is m's name before Host.Rename (opRenamed), or when its
	// roles changed (opRoles).
	oldName string
	// cursor is the message id a page starts from (opHistory: before it,
	// 0 = the newest; opHistoryAfter: after it), limit the page size asked
	// for (0 = the default).
	cursor uint64
	limit  int
	// msgID is the message redacted (opRedact).
	msgID uint64
	// expiryGen is the generation of m's expiry timer that fired
	// (opExpired): a refresh since then makes it stale (expiry.go).
	expiryGen uint64
	// admin is the message the admin API posts (opAdminPost).
	admin *adminMsg
	// closeCode is opKick's close code: 0 for 1000, 1008 for a ban.
	closeCode ws.StatusCode
	// settings is the change of room settings (opSettings).
	settings *settingsChange
	// dm is the recipient of a direct message (opDirect); dmOut the
	// message encoded for delivery and dmSide which of its views m gets
	// (opDirectOut: 0 the sender's, 1 the recipient's); with is the
	// other user of a conversation paged (opDirectPage, with cursor and
	// limit as opHistory, and hasAfter for a page forwards).
	dm       *dmPeer
	dmOut    *dmOut
	dmSide   int
	with     string
	hasAfter bool
	// delivered is the batch of opDeliver, ids in the log's order.
	delivered []Message
	// remote is the other node's member of opRemote (as it is now, or
	// as it was when remoteGone: it left).
	remote     *remoteMember
	remoteGone bool
}

// room is one chat room and its ordering goroutine (see the package doc).
// Its parts own their data and state their invariants at their types:
// roster (membership.go), out (outbox.go), presence (presence.go), posting
// (post.go), fan (fanout.go).
//
// Invariants:
//   - only the room goroutine adds or removes members, writes to members'
//     connections for room events, and calls Hooks/History.Append for the
//     room;
//   - a message is encoded and written only after History.Append returned;
//   - the queue (qmu) is the only state other goroutines write: enqueue
//     never blocks and refuses once stopping is set;
//   - every op that counted against a member's MaxPending (messages,
//     history and presence requests) is in release until its results were
//     handed to the engine, then released at the end of the batch.
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

	roster   roster
	out      outbox
	presence presence
	posting  posting
	fan      fanout
	dl       delivery // cluster mode: what the members were given (deliver.go)

	// Owned by the goroutine.
	// slowLast is when each poster's last message passed slow mode
	// (moderation.go): by account (all its connections and tabs share
	// one interval), by connection for a guest.
	slowLast map[slowKey]time.Time
	release  []*member // one entry per finished message/history op
	evict    []*member // slow consumers found by the last writes
	unclaim  []uint64  // sessions whose cluster claims to release after the batch (remote.go)
}

func newRoom(s *Server, name string, prev *room) *room {
	r := &room{
		srv:  s,
		name: name,
		prev: prev,
		done: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	r.roster.names = make(nameTable)
	r.presence.delta.at = -1
	r.loadRemote() // the other nodes' members (remote.go; Server.mu is held)
	return r
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
	r.startDelivered() // cluster mode: where the room's log stands (deliver.go)
	defer r.stopSweepers()
	for {
		select {
		case <-r.wake:
		case p := <-r.fan.passDone: // nil (blocks) until the room is big
			r.finishPass(p)
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
					if t := r.presence.announceTimer; t != nil {
						// A callback already running finds the room
						// stopped: enqueue refuses its op.
						t.Stop()
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

// process handles one batch taken from the queue: runs of messages are
// hooked, stored and encoded together (post); control operations run
// between them in order.
func (r *room) process(batch []op) {
	for i := 0; i < len(batch); {
		if batch[i].kind == opMessage {
			j := i + 1
			for j < len(batch) && batch[j].kind == opMessage {
				j++
			}
			r.post(batch[i:j])
			i = j
			continue
		}
		if batch[i].kind == opJoin && r.srv.presence != nil {
			j := i + 1
			for j < len(batch) && batch[j].kind == opJoin {
				j++
			}
			if j-i > 1 {
				r.joinRun(batch[i:j]) // claimed together (remote.go)
				i = j
				continue
			}
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
	r.releasePending() // the batch's leaves, from the cluster's roster (remote.go)
}

// control handles one non-message operation. Those that write to one
// member wait for the broadcasts in flight first (see fanout.go); joins,
// leaves and the others only add to the outbox or the sweepers' inboxes.
func (r *room) control(o *op) {
	switch o.kind {
	case opJoin, opLeave, opBroadcast, opRedact, opAnnounce, opRoles, opAdminPost, opSettings, opIgnores, opDirect, opDeliver, opRemote:
	default:
		r.waitForPasses()
	}
	switch o.kind {
	case opJoin:
		r.join(o.m)
	case opLeave:
		r.remove(o.m)
	case opHistory:
		r.release = append(r.release, o.m)
		r.answerHistory(o.m, pageRequest{before: o.cursor, limit: o.limit})
	case opHistoryAfter:
		r.release = append(r.release, o.m)
		r.answerHistory(o.m, pageRequest{after: o.cursor, hasAfter: true, limit: o.limit})
	case opRenamed:
		r.renamed(o.m, o.oldName)
	case opSend:
		if o.m.joined.Load() {
			r.flushAndWait()
			o.m.write(o.m.appendNotice(nil, r.name, o.notice))
		}
	case opBroadcast:
		r.outSystem(o.notice)
	case opKick:
		r.kick(o.m, o.notice, o.closeCode)
	case opPresence:
		r.release = append(r.release, o.m)
		if o.m.joined.Load() {
			// Flushed first: the list is then the state after every
			// event m already has, and no pending delta follows it.
			r.flushAndWait()
			r.roster.mu.Lock()
			names := r.roster.memberNames(nil)
			r.roster.mu.Unlock()
			o.m.write(withAccounts(appendJSONPresence(nil, r.name, names), r.presenceAccounts(names)))
		}
	case opAnnounce:
		r.presence.announceArmed = false
		r.releaseHeld()
	case opRoles:
		r.reclaim(o.m) // the cluster's roster gets the new roles (remote.go)
		r.rolesChangedEvent(o.m, o.oldName)
	case opExpired:
		r.expire(o.m, o.expiryGen)
	case opRedact:
		if len(r.roster.json) > 0 {
			r.out.addRedact(r.name, o.msgID)
		}
	case opAdminPost:
		r.adminPost(o.admin)
	case opSettings:
		r.settingsChanged(o.settings)
	case opIgnores:
		r.ignoresChanged(o.m)
	case opTyping:
		r.relayTyping(o.m)
	case opDirect:
		r.direct(o) // direct.go
	case opDirectOut:
		r.directOut(o)
	case opDeliver:
		r.deliver(o) // deliver.go
	case opRemote:
		r.remoteChanged(o) // remote.go
	case opConvList:
		r.release = append(r.release, o.m)
		r.answerConversations(o.m) // direct_read.go
	case opDirectPage:
		r.release = append(r.release, o.m)
		q := pageRequest{before: o.cursor, limit: o.limit}
		if o.hasAfter {
			q = pageRequest{after: o.cursor, hasAfter: true, limit: o.limit}
		}
		r.answerDirectHistory(o.m, o.with, q)
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
