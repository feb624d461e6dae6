package chat

import (
	"fmt"

	"github.com/moonchat/moonchat/core/ws"
)

// History paging, written once for its three readers: a JSON client's
// history request (historyRequest), GET /api/history (serveHistory) and
// the replay a newcomer gets on joining (replay, also with ?since=ID).
//
// A page is at most Config.APILimit messages ([store] api_limit); a
// request that names no size gets exactly that, the one default page
// size. The count of messages replayed on joining is its own setting
// (Config.Replay, [store] replay) and is read through the same paging.

// pageRequest asks for one page of a room's history, in one of three
// forms: the newest messages (no cursor, or before = 0), the newest
// messages older than before, or the oldest messages newer than after
// (hasAfter; after = 0 means from the first message).
type pageRequest struct {
	before   uint64
	after    uint64
	hasAfter bool
	// limit is the page size asked for: 0 means the default; more than
	// Config.APILimit means Config.APILimit.
	limit int
	// bounded limits the page to ids up to upTo (cluster mode, on the
	// room goroutine: the room's last delivered id, deliver.go), so that
	// a page never holds a message its reader will also get live.
	bounded bool
	upTo    uint64
}

// historyPage is one page of a room's history, oldest first.
type historyPage struct {
	msgs []Message
	// complete is false when messages right after the after cursor no
	// longer exist (retention or redaction): the reader is told of a gap.
	// Pages read backwards are always complete.
	complete bool
	// more is true when further messages exist beyond the page in the
	// direction read (older for backwards, newer for forwards).
	more bool
}

// pageSize is the number of messages a page asked for with limit holds at
// most: limit itself, capped at Config.APILimit; 0 (or less) means
// Config.APILimit.
func (s *Server) pageSize(limit int) int {
	if limit <= 0 {
		return s.cfg.APILimit
	}
	return min(limit, s.cfg.APILimit)
}

// readPage reads one page of room's history. s.history must not be nil.
func (s *Server) readPage(room string, q pageRequest) (historyPage, error) {
	limit := s.pageSize(q.limit)
	if q.hasAfter {
		if q.bounded && q.after >= q.upTo {
			// Nothing delivered after it yet: what follows comes live.
			return historyPage{complete: true}, nil
		}
		msgs, complete, more, err := s.history.After(room, q.after, limit)
		if err != nil {
			return historyPage{}, fmt.Errorf("history of %q after %d: %w", room, q.after, err)
		}
		if q.bounded {
			n := len(msgs)
			for n > 0 && msgs[n-1].ID > q.upTo {
				n--
			}
			if n < len(msgs) || (n > 0 && msgs[n-1].ID == q.upTo) {
				more = false // the rest comes live
			}
			msgs = msgs[:n]
		}
		return historyPage{msgs: msgs, complete: complete, more: more}, nil
	}
	if q.bounded {
		// The newest delivered, not the newest stored: those beyond are
		// on their way through the room's queue.
		if q.upTo == 0 {
			return historyPage{complete: true}, nil
		}
		if q.before == 0 || q.before > q.upTo+1 {
			q.before = q.upTo + 1
		}
	}
	// One message more than the page tells whether there are more.
	var msgs []Message
	var err error
	if q.before == 0 {
		msgs, err = s.history.Recent(room, limit+1)
	} else {
		msgs, err = s.history.Before(room, q.before, limit+1)
	}
	if err != nil {
		return historyPage{}, fmt.Errorf("history of %q before %d: %w", room, q.before, err)
	}
	p := historyPage{msgs: msgs, complete: true}
	if len(msgs) > limit {
		p.msgs, p.more = msgs[len(msgs)-limit:], true
	}
	return p, nil
}

// readPage reads one page of the room's history for a member of the room
// (room goroutine): in cluster mode bounded by what the room delivered
// (delivery), so that the page and the live messages never overlap.
func (r *room) readPage(q pageRequest) (historyPage, error) {
	s := r.srv
	if s.broker != nil {
		if !r.ensureDelivered() {
			return historyPage{}, fmt.Errorf("history of %q: the room's newest id could not be read", r.name)
		}
		q.bounded, q.upTo = true, r.dl.last
	}
	return s.readPage(r.name, q)
}

// answerHistory answers a JSON client's history request q: a history
// event with reason "before" or "after", the latter preceded by a gap
// event when messages right after the cursor no longer exist. A client
// resuming with ?since=ID repeats "after" requests with the last id of
// each page while "more" is true.
func (r *room) answerHistory(m *member, q pageRequest) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	if reason := s.readRefusal(r.name, m.currentRoles()); reason != "" {
		// Joining needed read already; this holds should a member's roles
		// ever change while it is in the room.
		s.metrics.historyRefused.Add(1)
		m.write(appendJSONError(nil, codeNotAllowed, reason))
		return
	}
	// Flushed first, so that every message m already has live is older
	// than the page's snapshot of history.
	r.flushAndWait()
	if s.history == nil {
		m.write(appendJSONError(nil, codeNoHistory, "this server keeps no history"))
		return
	}
	page, err := r.readPage(q)
	if err != nil {
		s.log.Error("chat: reading history failed", "room", r.name, "err", err)
		m.write(appendJSONError(nil, codeNoHistory, "history is unavailable right now"))
		return
	}
	page.msgs = s.filterIgnored(m, page.msgs)
	if !q.hasAfter {
		m.write(appendJSONHistory(nil, r.name, "before", page.msgs, true, page.more))
		return
	}
	var frames [][]byte
	if !page.complete {
		frames = append(frames, r.gapFrame(q.after, page.msgs))
	}
	frames = append(frames, appendJSONHistory(nil, r.name, "after", page.msgs, page.complete, page.more))
	m.writePrepared(ws.NewPrepared(ws.OpText, frames...))
}

// gapFrame is the JSON gap event for a page read after the message after
// that lacks the messages right after it.
func (r *room) gapFrame(after uint64, msgs []Message) []byte {
	first := after + 1
	if len(msgs) > 0 {
		first = msgs[0].ID
	}
	return appendJSONGap(nil, r.name, after, first)
}
