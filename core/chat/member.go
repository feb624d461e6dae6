package chat

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/ws"
)

// member is one connection of the chat server. It is created by the HTTP
// upgrade (before the engine's OnOpen) and lives until OnClose.
//
// Ownership: the fields in the first group are written before the
// connection is handed to the engine or in OnOpen and only read afterwards;
// flood belongs to the connection's OnMessage calls (serialised by the
// engine) but for flood.limits (atomic, flood.go); name is changed under room.roster.mu and read atomically anywhere;
// joined is set and cleared by the room goroutine under room.roster.mu.
type member struct {
	srv    *Server
	id     uint64
	conn   *ws.Conn
	format format
	addr   string
	// client is the client's address as the per-address limits resolve
	// it (Server.clientAddr; invalid when a proxy named none): what
	// address bans match (moderation.go).
	client netip.Addr
	// nkeys caches the nameKeys of m's name for name restrictions
	// (moderation.go).
	nkeys atomic.Pointer[nameKeyCache]
	// from the request
	roomName  string
	requested string
	account   string    // Identity.ID; "" for a guest
	roles     []string  // "guest", or "user" and the credentials' roles (read through currentRoles)
	acct      *Account  // nil for a guest; shared by the member's messages (read through msgAccount)
	rooms     []string  // the credentials' rooms claim (RoomAllowed); nil = not narrowed
	expires   time.Time // when the credentials expire (Identity.Expires); zero = never
	since     uint64
	hasSince  bool
	// joinedAt is when m joined its room (set by the join before its name
	// is claimed): the Joined of its cluster presence entry (remote.go).
	joinedAt time.Time
	// refuseCode != 0: the connection is refused right after the upgrade.
	refuseCode   ws.StatusCode
	refuseReason string
	room         *room // nil for a refused connection
	// lease is the connection's count against its address's limits,
	// released with s.conns in OnClose (addrlimits.go).
	lease addrlimit.Lease

	flood floodState // flood control (flood.go)
	// typingAt is when m's last typing event was relayed (typing.go);
	// owned by OnMessage like flood.
	typingAt time.Time

	sweeper int // index of the room's sweeper writing to m (fanout.go); room goroutine only
	// liveAfter is, in cluster mode, the ?since=ID m resumed from when it
	// is beyond the ids the room had delivered at m's join: live messages
	// up to it are left out of what m is written (deliver.go); 0 once
	// the room caught up. Room goroutine only.
	liveAfter uint64
	// own is a guest's messages sent on this connection, which it may
	// delete within Config.DeleteOwnWindow (delete.go).
	own ownRecord
	// ign is m's ignore list (nil: none), replaced whole (ignore.go).
	ign atomic.Pointer[ignoreSet]

	name atomic.Pointer[string]
	// granted is the member's roles once Host.Grant or Host.Revoke changed
	// them (nil until then: roles and acct hold). It is replaced whole,
	// never changed in place, so that the room goroutine reads a member's
	// roles with one atomic load while Host methods on any goroutine
	// change them (roles.go).
	granted atomic.Pointer[sessionRoles]
	// expiry is the credentials' expiry timer and refresh state (expiry.go).
	expiry expiry
	joined atomic.Bool // in the room's member list
	gone   atomic.Bool // OnClose has run
	slow   atomic.Bool // closed as a slow consumer (logged once)

	// Backpressure: inflight counts this member's operations in the room
	// pipeline; past srv.cfg.MaxPending reading is paused until the room
	// has worked it down to half.
	inflight atomic.Int32
	pauseMu  sync.Mutex
	paused   bool
}

// user returns the seam view of m.
func (m *member) user() User {
	return User{SessionID: m.id, Name: m.currentName(), Room: m.roomName, Addr: m.addr, ID: m.account, Roles: m.currentRoles()}
}

// currentRoles returns m's roles now: the credentials' roles, or those
// Host.Grant and Host.Revoke left. The slice is never changed in place:
// callers may keep it.
func (m *member) currentRoles() []string {
	if g := m.granted.Load(); g != nil {
		return g.roles
	}
	return m.roles
}

// msgAccount returns what m's messages carry as Message.Account: nil for
// a guest that has only the guest role, else an *Account shared by every
// message until m's roles change again.
func (m *member) msgAccount() *Account {
	if g := m.granted.Load(); g != nil {
		return g.acct
	}
	return m.acct
}

func (m *member) currentName() string {
	if p := m.name.Load(); p != nil {
		return *p
	}
	return m.requested
}

// acquire counts one more operation in the pipeline; called from OnMessage.
func (m *member) acquire() {
	limit := int32(m.srv.cfg.MaxPending)
	if m.inflight.Add(1) < limit {
		return
	}
	m.pauseMu.Lock()
	// Re-check under the lock: the room may have drained meanwhile, and
	// release only resumes a member it sees paused.
	if !m.paused && m.inflight.Load() >= limit {
		m.paused = true
		m.conn.PauseReading()
	}
	m.pauseMu.Unlock()
}

// release ends one operation; called by the room goroutine once the
// operation's results were handed to the engine.
func (m *member) release() {
	n := m.inflight.Add(-1)
	if n > int32(m.srv.cfg.MaxPending)/2 {
		return
	}
	m.pauseMu.Lock()
	if m.paused && m.inflight.Load() < int32(m.srv.cfg.MaxPending) {
		m.paused = false
		m.conn.ResumeReading()
	}
	m.pauseMu.Unlock()
}

// notice encodes a system notice for m's format.
func (m *member) appendNotice(b []byte, room, text string) []byte {
	if m.format == formatJSON {
		return appendJSONSystem(b, room, text, nowUTC())
	}
	return appendPlainNotice(b, text)
}

// appendError encodes an error for m's format: an "error" event in JSON, a
// "* TEXT" notice in plain text.
func (m *member) appendError(b []byte, code, text string) []byte {
	if m.format == formatJSON {
		return appendJSONError(b, code, text)
	}
	return appendPlainNotice(b, text)
}

// sendError writes an error to m at once (used from OnMessage, outside any
// room ordering: it concerns what m itself just sent).
func (m *member) sendError(code, text string) {
	m.write(m.appendError(nil, code, text))
}

// write hands one frame to the engine.
func (m *member) write(frame []byte) {
	m.srv.metrics.framesOut.Add(1)
	_ = m.slowConsumer(m.conn.WriteMessage(ws.OpText, frame))
}

// writePrepared hands an encoded batch to the engine. It reports whether
// m turned out to be a slow consumer (the engine has closed it).
func (m *member) writePrepared(p *ws.Prepared) bool {
	m.srv.metrics.framesOut.Add(uint64(p.Len()))
	return m.slowConsumer(m.conn.WritePrepared(p))
}

// writeBatch hands several encoded batches to the engine in one write (a
// sweeper catching up, see fanout.go); frames are counted by the room. It
// reports whether m turned out to be a slow consumer.
func (m *member) writeBatch(ps []*ws.Prepared) bool {
	if len(ps) == 1 {
		return m.slowConsumer(m.conn.WritePrepared(ps[0]))
	}
	return m.slowConsumer(m.conn.WritePreparedBatch(ps))
}

// slowConsumer reports whether a write's error says m is a slow consumer.
// The engine has already closed such a member (its OnClose will follow);
// it is logged and counted once here. Any other error is a connection
// that is simply leaving: not reported.
func (m *member) slowConsumer(err error) bool {
	if err == nil || !errors.Is(err, ws.ErrSlowConsumer) {
		return false
	}
	if m.slow.CompareAndSwap(false, true) {
		m.srv.metrics.slowConsumers.Add(1)
		m.srv.log.Warn("chat: slow consumer dropped",
			"room", m.roomName, "user", m.currentName(), "session", m.id,
			"queued_bytes", m.conn.Buffered(), "max_queue_bytes", m.srv.cfg.WS.MaxQueueBytes)
	}
	return true
}
