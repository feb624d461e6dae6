package scripttest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
)

// Config says what a Server loads.
type Config struct {
	// FS holds the scripts; Scripts names the ones to load (all of FS's
	// scripts when empty, as the server loads a directory).
	FS      fs.FS
	Scripts []string
	// Options are the scripts' settings, as config.toml's [scripts.NAME].
	Options scripting.ScriptOptions
	// Moderate lists the roles the room rules let moderate every room
	// (config.toml's [rooms."*"] moderate). None: nobody moderates, as
	// on a server without room rules; scripts then fall back on the role
	// "admin".
	Moderate []string
	// Rules, when set, decide chat.may as the server's room rules do
	// (config.toml's [rooms."PATTERN"]); Moderate is then unused.
	Rules *chat.RoomRules
	// HookTimeout bounds each call (0: 1s, roomier than the server's
	// default 100ms so that a test under -race on a busy machine does not
	// fail on time; a runaway loop still stops).
	HookTimeout time.Duration
	// KV is the store of chat.kv (nil: a fresh in-memory one).
	KV scripting.KV
	// Logger receives the engine's log lines besides the Server's own
	// recording of them (nil: none).
	Logger *slog.Logger
}

// maxQueued bounds the follow-up work one step may queue (actions that
// cause actions…): past it the step stops with an error instead of
// looping for ever.
const maxQueued = 10000

// Server is a fake chat server around a real scripting.Engine. See the
// package doc. Its methods are for one goroutine (the test's); the
// engine's timer goroutine reaches it only through the Host methods,
// which lock mu.
type Server struct {
	eng   *scripting.Engine
	clock *Clock
	kv    *recordingKV
	ctx   context.Context
	stop  context.CancelFunc
	mod   []string
	rules *chat.RoomRules

	mu       sync.Mutex
	next     uint64 // last session id given
	members  []*member
	gone     map[uint64]*member // members who left, by session
	events   []*Event
	where    string // the step running: what new events are attributed to
	queue    []func()
	stored   map[string][]chat.Message
	senders  map[string]map[uint64]uint64 // room → message id → session
	restrict []chat.Restriction
	settings map[string]chat.RoomSettings
	audit    []chat.AuditEntry
	hookTime time.Duration        // what the last message's hooks took (Try)
	slowLast map[string]time.Time // room + account or session → last message, for slow mode
}

// member is one connected user.
type member struct {
	user    chat.User
	ignored []chat.IgnoreTarget
	limits  chat.Limits
	joining bool // in the join hooks: not in the room yet
}

// New loads cfg's scripts into an engine bound to a new Server and starts
// its timers (on the fake clock). Close it when done.
func New(ctx context.Context, cfg Config) (*Server, error) {
	src, err := pick(cfg.FS, cfg.Scripts)
	if err != nil {
		return nil, err
	}
	s := &Server{
		clock:    NewClock(),
		kv:       &recordingKV{KV: cfg.KV},
		mod:      cfg.Moderate,
		rules:    cfg.Rules,
		gone:     map[uint64]*member{},
		stored:   map[string][]chat.Message{},
		senders:  map[string]map[uint64]uint64{},
		settings: map[string]chat.RoomSettings{},
	}
	if s.kv.KV == nil {
		s.kv.KV = scripting.NewMemKV()
	}
	s.kv.s = s
	timeout := cfg.HookTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	logger := slog.New(&recordingHandler{s: s, next: cfg.Logger})
	s.eng, err = scripting.New(ctx, scripting.Options{
		FS: src, HookTimeout: timeout, KV: s.kv, Logger: logger, Clock: s.clock, ScriptOptions: cfg.Options,
	})
	if err != nil {
		return nil, err
	}
	s.eng.Bind(s)
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.eng.Start(s.ctx)
	if n := s.eng.Timers(); n > 0 {
		if err := s.clock.waitArmed(1, 10*timeout); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// pick returns an FS holding only the named scripts of fsys (all of its
// scripts when names is empty), at its top level.
func pick(fsys fs.FS, names []string) (fs.FS, error) {
	if fsys == nil {
		return nil, scripting.ErrNoScripts
	}
	if len(names) == 0 {
		return fsys, nil
	}
	files := mapFS{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("script %s: %w", n, err)
		}
		base := n[strings.LastIndexByte(n, '/')+1:]
		if _, dup := files[base]; dup {
			return nil, fmt.Errorf("script %s given twice", base)
		}
		files[base] = b
	}
	return files, nil
}

// Close stops the engine and its timers.
func (s *Server) Close() {
	s.stop()
	_ = s.eng.Close()
}

// Engine is the server's engine.
func (s *Server) Engine() *scripting.Engine { return s.eng }

// Clock is the server's fake clock.
func (s *Server) Clock() *Clock { return s.clock }

// SetWhere attributes the events from now on to a step (a test file's
// "file:line"), until the next call.
func (s *Server) SetWhere(where string) {
	s.mu.Lock()
	s.where = where
	s.mu.Unlock()
}

// JoinOptions describe a user joining.
type JoinOptions struct {
	Room  string   // "" → "lobby"
	ID    string   // account id; "" → a guest
	Roles []string // nil → ["guest"], or ["user"] with an ID
	Addr  string   // "" → 192.0.2.N
}

// Join runs the join hooks for a new member and adds them to the room
// (with "* NAME joined") unless a hook or a ban refuses them: then it
// returns 0 and the reason.
func (s *Server) Join(name string, o JoinOptions) (session uint64, refused string) {
	s.mu.Lock()
	s.next++
	id := s.next
	if o.Room == "" {
		o.Room = "lobby"
	}
	if o.Roles == nil {
		o.Roles = []string{chat.RoleGuest}
		if o.ID != "" {
			o.Roles = []string{chat.RoleUser}
		}
	}
	if o.Addr == "" {
		o.Addr = fmt.Sprintf("192.0.2.%d", id%250+1)
	}
	u := chat.User{Name: name, Room: o.Room, SessionID: id, Addr: o.Addr, ID: o.ID, Roles: slices.Clone(o.Roles)}
	if r, ok := s.restrictedLocked(chat.KindBan, u); ok {
		reason := restrictionText(r, u.Room)
		s.eventLocked(Event{Kind: KindRefused, Session: id, User: name, Room: o.Room, Text: reason})
		s.mu.Unlock()
		return 0, reason
	}
	// Joining: reachable by Send (a join hook greets the newcomer, as on
	// the server), not yet a member of the room (Users, room lines).
	m := &member{user: u, limits: defaultLimits, joining: true}
	s.members = append(s.members, m)
	s.mu.Unlock()
	res := s.eng.Join(s.ctx, u)
	s.mu.Lock()
	defer s.drainAfter()
	defer s.mu.Unlock()
	m.joining = false
	if res.Err != nil {
		s.hookErrorLocked(res.Err)
	}
	if res.Refuse || res.Err != nil {
		reason := res.Reason
		if !res.Refuse {
			reason = "a script failed" // fail closed, as [scripting] on_failure = "deny"
		}
		s.members = slices.DeleteFunc(s.members, func(x *member) bool { return x == m })
		s.gone[id] = m
		s.eventLocked(Event{Kind: KindRefused, Session: id, User: name, Room: o.Room, Text: reason})
		return 0, reason
	}
	if res.Name != "" {
		m.user.Name = res.Name
	}
	m.user.Name = s.uniqueLocked(u.Room, m.user.Name, id)
	s.roomLineLocked(u.Room, "* "+m.user.Name+" joined", nil)
	return id, ""
}

// defaultLimits are [chat] flood_rate and flood_burst as shipped.
var defaultLimits = chat.Limits{Rate: 10, Burst: 20}

// uniqueLocked makes name unique among room's members, as the server
// does (bob, bob-2, …), comparing without case.
func (s *Server) uniqueLocked(room, name string, self uint64) string {
	taken := func(n string) bool {
		for _, m := range s.members {
			if m.user.Room == room && m.user.SessionID != self && !m.joining && strings.EqualFold(m.user.Name, n) {
				return true
			}
		}
		return false
	}
	given := name
	for i := 2; taken(given); i++ {
		given = fmt.Sprintf("%s-%d", name, i)
	}
	return given
}

// Say sends text from a member as their client would: a message or a
// command, through the message hooks, then stored and delivered unless
// a hook dropped it. It reports whether it was delivered, and the reason
// given when not.
func (s *Server) Say(session uint64, text string) (delivered bool, reason string, err error) {
	return s.post(session, text, false, "")
}

// SendDirect sends a direct message from a member to the user called to,
// as a moonchat.v1 "direct" event does.
func (s *Server) SendDirect(session uint64, to, text string) (delivered bool, reason string, err error) {
	if err := s.checkDirect(session, to, text); err != nil {
		return false, err.Error(), nil
	}
	return s.post(session, text, false, to)
}

// post runs one message through the hooks and the queue.
func (s *Server) post(session uint64, text string, action bool, to string) (bool, string, error) {
	ok, reason, err := s.postOne(session, text, action, to)
	s.drain()
	return ok, reason, err
}

// postOne runs one message through the hooks and delivers it; what it
// queued is left for drain.
func (s *Server) postOne(session uint64, text string, action bool, to string) (bool, string, error) {
	s.mu.Lock()
	m := s.memberLocked(session)
	if m == nil {
		s.mu.Unlock()
		return false, "", chat.ErrNoSuchUser
	}
	u := m.user
	u.Roles = slices.Clone(u.Roles)
	// A mute refuses all but commands, which the scripts answer (a muted
	// member may still ask for /help), as the server does.
	_, isCmd := commandName(text)
	if r, ok := s.restrictedLocked(chat.KindMute, u); ok && (!isCmd || action || to != "") {
		reason := "message not sent: " + restrictionText(r, u.Room)
		s.eventLocked(Event{Kind: KindRefused, Session: session, User: u.Name, Room: u.Room, Text: reason})
		s.mu.Unlock()
		return false, reason, nil
	}
	s.mu.Unlock()
	msg := chat.Message{Room: u.Room, User: u.Name, Text: text, Time: s.clock.Now(), Action: action, To: to}
	start := time.Now()
	res := s.eng.Message(s.ctx, u, &msg)
	took := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookTime = took
	if res.Err != nil {
		s.hookErrorLocked(res.Err)
	}
	if res.Drop || res.Err != nil {
		reason := res.Reason
		if !res.Drop {
			reason = "message not delivered: a script failed" // fail closed
		}
		if reason != "" || !res.Drop {
			s.eventLocked(Event{Kind: KindRefused, Session: session, User: u.Name, Room: u.Room, Text: reason})
		} else if _, isCmd := commandName(text); !isCmd || action || to != "" {
			s.eventLocked(Event{Kind: KindDropped, Session: session, User: u.Name, Room: u.Room, Text: text})
		}
		return false, reason, nil
	}
	if res.Replace {
		msg.Text = res.Text
	}
	if to != "" {
		s.deliverDirectLocked(u, to, msg)
		return true, "", nil
	}
	if reason := s.slowLocked(m, u); reason != "" {
		s.eventLocked(Event{Kind: KindRefused, Session: session, User: u.Name, Room: u.Room, Text: reason})
		return false, reason, nil
	}
	msg.ID = uint64(len(s.stored[u.Room]) + 1)
	if n := len(s.stored[u.Room]); n > 0 {
		msg.ID = s.stored[u.Room][n-1].ID + 1
	}
	if u.ID != "" {
		msg.Account = &chat.Account{ID: u.ID}
	}
	s.stored[u.Room] = append(s.stored[u.Room], msg)
	if s.senders[u.Room] == nil {
		s.senders[u.Room] = map[uint64]uint64{}
	}
	s.senders[u.Room][msg.ID] = session
	line := Line(msg)
	s.eventLocked(Event{Kind: KindStored, Session: session, User: u.Name, Room: u.Room, Text: line, ID: msg.ID})
	s.roomLineLocked(u.Room, line, &u)
	return true, "", nil
}

// commandName is the command a text would run ("/nick x" → "nick").
func commandName(text string) (string, bool) {
	if len(text) < 2 || text[0] != '/' || !(text[1] >= 'a' && text[1] <= 'z' || text[1] >= 'A' && text[1] <= 'Z') {
		return "", false
	}
	name, _, _ := strings.Cut(text[1:], " ")
	return name, true
}

// Line is how a stored message reads in the plain-text protocol:
// "alice: hi", or "* alice waves" for an action.
func Line(m chat.Message) string {
	if m.Action {
		return "* " + m.User + " " + m.Text
	}
	return m.User + ": " + m.Text
}

// Leave takes a member out of their room ("* NAME left") and runs the
// leave hooks.
func (s *Server) Leave(session uint64) error {
	s.mu.Lock()
	u, ok := s.removeLocked(session)
	s.mu.Unlock()
	if !ok {
		return chat.ErrNoSuchUser
	}
	s.leaveHook(u)
	s.drain()
	return nil
}

func (s *Server) leaveHook(u chat.User) {
	if err := s.eng.Leave(s.ctx, u); err != nil {
		s.mu.Lock()
		s.hookErrorLocked(err)
		s.mu.Unlock()
	}
}

// removeLocked takes a member out and announces it.
func (s *Server) removeLocked(session uint64) (chat.User, bool) {
	for i, m := range s.members {
		if m.user.SessionID == session {
			s.members = slices.Delete(s.members, i, i+1)
			s.gone[session] = m
			s.roomLineLocked(m.user.Room, "* "+m.user.Name+" left", nil)
			return m.user, true
		}
	}
	return chat.User{}, false
}

// Advance moves the fake clock d forward, firing the chat.every timers
// that fall due (see Clock.Advance) and running what each tick queued.
func (s *Server) Advance(d time.Duration) error {
	n := s.eng.Timers()
	if n == 0 {
		return s.clock.Advance(d, 0, 0, nil)
	}
	return s.clock.Advance(d, 1, 10*time.Second, s.drain)
}

// drain runs the queued follow-ups (actions, direct messages, rename
// and leave hooks) until none is left.
func (s *Server) drain() {
	for i := 0; ; i++ {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		if i >= maxQueued {
			s.queue = nil
			s.eventLocked(Event{Kind: KindError, Text: fmt.Sprintf("more than %d queued follow-ups (actions or direct messages causing more): stopped", maxQueued)})
			s.mu.Unlock()
			return
		}
		f := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		f()
	}
}

// drainAfter is drain for a deferred call (after the lock is released).
func (s *Server) drainAfter() { s.drain() }

// enqueueLocked queues f to run after the engine call in progress.
func (s *Server) enqueueLocked(f func()) { s.queue = append(s.queue, f) }

// memberLocked finds a connected member.
func (s *Server) memberLocked(session uint64) *member {
	for _, m := range s.members {
		if m.user.SessionID == session {
			return m
		}
	}
	return nil
}

// User returns a member as the hooks see them; ok is false once they
// left (the last known state is still returned).
func (s *Server) User(session uint64) (u chat.User, connected bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.memberLocked(session); m != nil {
		return m.user, true
	}
	if m := s.gone[session]; m != nil {
		return m.user, false
	}
	return chat.User{}, false
}

// Stored returns room's stored messages, oldest first.
func (s *Server) Stored(room string) []chat.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stored[room])
}

// Seed stores messages as if they had been sent before the test (no
// hooks run): what chat.history finds.
func (s *Server) Seed(room, user, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := uint64(1)
	if n := len(s.stored[room]); n > 0 {
		id = s.stored[room][n-1].ID + 1
	}
	s.stored[room] = append(s.stored[room], chat.Message{ID: id, Room: room, User: user, Text: text, Time: s.clock.Now()})
}

// KVGet reads chat.kv as script sees it.
func (s *Server) KVGet(script, key string) (string, bool, error) {
	return s.kv.Get(script, key)
}

// Restrictions returns the bans and mutes in force in room (every room's
// included), oldest first.
func (s *Server) Restrictions(room string) []chat.Restriction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restrictionsLocked(room)
}

// AuditLog returns the audit entries of room ("" all), oldest first.
func (s *Server) AuditLog(room string) []chat.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chat.AuditEntry
	for _, a := range s.audit {
		if room == "" || a.Room == room || a.Room == "" {
			out = append(out, a)
		}
	}
	return out
}

// errNotMember is the error of a Host call for a session that left.
var errNotMember = chat.ErrNoSuchUser

// errs for DeleteMessage, worded as the server's.
var (
	errNotYours = errors.New("not your message: only moderators may delete others' messages")
	errTooLate  = errors.New("too late: your own messages can be deleted for 15m after sending")
	errNoMsg    = errors.New("no such message")
)

// slowLocked applies the room's slow mode to a message about to be
// stored, as the server does: moderators are exempt; an account (a
// guest's connection) posts once per interval. It returns the refusal, or
// "" and counts the message.
func (s *Server) slowLocked(m *member, u chat.User) string {
	slow := s.settings[u.Room].Slow
	if slow <= 0 || s.mayLocked(m, chat.ActionModerate) {
		return ""
	}
	key := u.Room + "\x00" + u.ID
	if u.ID == "" {
		key = fmt.Sprintf("%s\x00#%d", u.Room, u.SessionID)
	}
	now := s.clock.Now()
	if last, ok := s.slowLast[key]; ok {
		if wait := last.Add(slow).Sub(now); wait > 0 {
			return "message not sent: slow mode is on in " + u.Room + " (one message per " + slow.String() +
				"): wait " + (wait + time.Second - 1).Truncate(time.Second).String()
		}
	}
	if s.slowLast == nil {
		s.slowLast = map[string]time.Time{}
	}
	s.slowLast[key] = now
	return ""
}

// restrictionText is why a ban or mute refuses, worded as the server's.
func restrictionText(r chat.Restriction, room string) string {
	var b strings.Builder
	if r.Kind == chat.KindBan {
		b.WriteString("you are banned from ")
	} else {
		b.WriteString("you are muted in ")
	}
	if r.Room == "" {
		b.WriteString("every room")
	} else {
		b.WriteString(room)
	}
	if !r.Expires.IsZero() {
		b.WriteString(" until " + r.Expires.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if r.Reason != "" {
		b.WriteString(": " + r.Reason)
	}
	return b.String()
}
