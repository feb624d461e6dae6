package scripttest

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
)

// Kinds of Event.
const (
	KindLine     = "line"     // a line a room's members saw (Room, Text)
	KindSend     = "send"     // a notice to one member alone (Session, Text)
	KindReceived = "received" // a line one member received (Session, Text)
	KindStored   = "stored"   // a message stored (Room, Text as a line, ID)
	KindDirect   = "direct"   // a direct message delivered (User → To, Text)
	KindRefused  = "refused"  // a message, command or join refused (Session, Text: the reason)
	KindDropped  = "dropped"  // a message dropped without a reason (Text: the message)
	KindKick     = "kick"     // a member kicked (Session, Text: the reason)
	KindRename   = "rename"   // a member renamed (User: the old name, Text: the new)
	KindKV       = "kv"       // a chat.kv write (Script, Key, Text: the value; Deleted)
	KindError    = "error"    // a script failure (Text: file:line and message)
	KindLog      = "log"      // a chat.log or print line (Script, Text)
	KindModerate = "moderate" // a moderation action (Text: the audit entry's action and target)
	KindRedact   = "redact"   // a stored message deleted (Room, ID)
)

// Event is one thing the scripts did, or the fake server did because of
// them, recorded in order.
type Event struct {
	Kind    string
	Room    string
	Session uint64
	User    string
	To      string
	Text    string
	Script  string
	Key     string
	ID      uint64
	Deleted bool
	// Where is the step that caused it (a test file's "file:line").
	Where string
	// Matched is set once an expectation took the event (each event
	// satisfies one expectation).
	Matched bool
}

// Events returns the events recorded so far (the server's own: marking
// one Matched is what an expectation does).
func (s *Server) Events() []*Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Lock runs f with the server's state locked (for expectations that mark
// events).
func (s *Server) Lock(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *Server) eventLocked(e Event) {
	e.Where = s.where
	s.events = append(s.events, &e)
}

// roomLineLocked records a line seen by room, and by each of its members
// (except those who ignore from, a message's sender).
func (s *Server) roomLineLocked(room, line string, from *chat.User) {
	s.eventLocked(Event{Kind: KindLine, Room: room, Text: line})
	for _, m := range s.members {
		if m.user.Room != room || m.joining || (from != nil && ignores(m, *from)) {
			continue
		}
		s.eventLocked(Event{Kind: KindReceived, Session: m.user.SessionID, User: m.user.Name, Room: room, Text: line})
	}
}

// ignores reports whether m ignores u.
func ignores(m *member, u chat.User) bool {
	for _, t := range m.ignored {
		if t.Session == u.SessionID || (t.Account != "" && t.Account == u.ID) {
			return true
		}
	}
	return false
}

// hookErrorLocked records a failed hook call, once per failure.
func (s *Server) hookErrorLocked(err error) {
	var he *chat.HookError
	if errors.As(err, &he) {
		err = he.Err
	}
	for _, e := range splitJoined(err) {
		s.eventLocked(Event{Kind: KindError, Text: e.Error()})
	}
}

// splitJoined undoes errors.Join.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}

// recordingKV is the scripts' chat.kv: it stores in KV and records every
// write.
type recordingKV struct {
	scripting.KV
	s *Server
}

// Set implements scripting.KV, recording the write.
func (kv *recordingKV) Set(script, key, value string) error {
	if err := kv.KV.Set(script, key, value); err != nil {
		return err
	}
	kv.s.mu.Lock()
	kv.s.eventLocked(Event{Kind: KindKV, Script: script, Key: key, Text: value})
	kv.s.mu.Unlock()
	return nil
}

// Delete implements scripting.KV, recording the delete.
func (kv *recordingKV) Delete(script, key string) error {
	if err := kv.KV.Delete(script, key); err != nil {
		return err
	}
	kv.s.mu.Lock()
	kv.s.eventLocked(Event{Kind: KindKV, Script: script, Key: key, Deleted: true})
	kv.s.mu.Unlock()
	return nil
}

// recordingHandler records the engine's log lines that matter to a test:
// the scripts' own (chat.log, print) and failed timers, which the engine
// only logs. Everything also goes to next when set.
type recordingHandler struct {
	s     *Server
	next  *slog.Logger
	attrs []slog.Attr
}

// Enabled implements slog.Handler: every record is looked at.
func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler: a failed timer is an error event, a
// script's own line (chat.log, print: only the script attribute) a log
// event.
func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.next != nil && h.next.Handler().Enabled(ctx, r.Level) {
		_ = h.next.Handler().Handle(ctx, r)
	}
	attrs := map[string]string{}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	switch {
	case strings.HasPrefix(r.Message, "lua timer"):
		text := attrs["at"] + ": " + attrs["error"] + " (every function defined at " + attrs["function"] + ")"
		h.s.mu.Lock()
		h.s.eventLocked(Event{Kind: KindError, Script: attrs["script"], Text: text})
		h.s.mu.Unlock()
	case r.Level == slog.LevelInfo && attrs["script"] != "" && len(attrs) == 1:
		h.s.mu.Lock()
		h.s.eventLocked(Event{Kind: KindLog, Script: attrs["script"], Text: r.Message})
		h.s.mu.Unlock()
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{s: h.s, next: h.next, attrs: append(slices.Clone(h.attrs), as...)}
}

// WithGroup implements slog.Handler (groups are not needed here).
func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// mapFS is the scripts a Server loads, by name.
type mapFS map[string][]byte

// Open implements fs.FS.
func (m mapFS) Open(name string) (fs.File, error) {
	files := fstest.MapFS{}
	for n, b := range m {
		files[n] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	return files.Open(name)
}
