package chat

import (
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Typing indicators (moonchat.v1 only): a client says {"type":"typing"}
// while its user types; the room relays {"type":"typing","room":R,
// "name":N} to its other moonchat.v1 members. They are presence, not
// chat: never stored, never seen by scripts, never sent to plain-text
// clients (a line per keystroke pause would drown a terminal).

// typingInterval is the least time between two relayed typing events of
// one connection; more are dropped silently. A page sends one about every
// 2 s while its user types and hides the indicator some 4 s after the
// last, so one per interval is all it needs.
const typingInterval = 2 * time.Second

// typing handles a typing event of m (OnMessage, serialised per
// connection by the engine): at most one per typingInterval is queued to
// the room; the excess, and anything from a muted member, is dropped
// without a word. The excess is not a flood strike: it costs one clock
// read and a comparison, nothing is queued or allocated for it.
func (s *Server) typing(m *member) {
	now := s.cfg.Clock.Now()
	if !m.typingAt.IsZero() && now.Sub(m.typingAt) < typingInterval {
		return
	}
	if s.restricted(KindMute, m, m.currentName()) != nil {
		return // a muted member's typing would promise a message that cannot come
	}
	m.typingAt = now
	m.room.enqueue(op{kind: opTyping, m: m})
}

// relayTyping sends m's typing event to the room's other moonchat.v1
// members (room goroutine). The frame is encoded once, as one Prepared
// shared by every write. In a big room the sweepers' broadcasts are
// waited for first (control), so that this write from the room goroutine
// does not overtake them.
func (r *room) relayTyping(m *member) {
	json := r.roster.json
	if !m.joined.Load() || len(json) == 0 || len(json) == 1 && json[0] == m {
		return // nobody else reads typing events
	}
	p := ws.NewPrepared(ws.OpText, appendJSONTyping(nil, r.name, m.currentName()))
	n := 0
	for _, o := range json {
		if o == m {
			continue
		}
		n++
		if o.slowConsumer(o.conn.WritePrepared(p)) {
			r.evict = append(r.evict, o)
		}
	}
	r.srv.metrics.framesOut.Add(uint64(n))
}

// appendJSONTyping appends a "typing" event.
func appendJSONTyping(b []byte, room, name string) []byte {
	b = append(b, `{"type":"typing","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, name)
	return append(b, '}')
}
