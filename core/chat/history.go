package chat

import "github.com/moonchat/moonchat/core/ws"

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
	r.flushAndWait()
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

