package scripting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// hostCall is one call the fake host received.
type hostCall struct {
	Method string
	ID     uint64
	Room   string
	Text   string // text, name or reason
	N      int
}

func (c hostCall) String() string {
	return fmt.Sprintf("%s(%d,%q,%q,%d)", c.Method, c.ID, c.Room, c.Text, c.N)
}

var errFakeNoUser = errors.New("no such user")

// fakeHost is a chat.Host that records calls and serves a fixed set of
// members and messages.
type fakeHost struct {
	mu      sync.Mutex
	calls   []hostCall
	users   []chat.User
	history []chat.Message
	histErr error
	// Errors Redact and Broadcast return when set.
	redactErr    error
	deleteErr    error // what DeleteMessage returns
	broadcastErr error
	// limits are the members' flood limits SetLimits stored (Limits
	// reports defaultLimits for the others).
	limits map[uint64]chat.Limits
	// Moderation state (Restrict … Audit, May): rules decide May (nil:
	// nobody moderates); restrictErr is what Restrict returns when set.
	restrictions []chat.Restriction
	settings     map[string]chat.RoomSettings
	audit        []chat.AuditEntry
	rules        *chat.RoomRules
	restrictErr  error
}

// defaultLimits are the flood limits fakeHost reports for a member no
// script changed: [chat] flood_rate and flood_burst as shipped.
var defaultLimits = chat.Limits{Rate: 10, Burst: 20}

func (h *fakeHost) record(c hostCall) {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	h.mu.Unlock()
}

func (h *fakeHost) known(id uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.users {
		if u.SessionID == id {
			return true
		}
	}
	return false
}

func (h *fakeHost) Send(id uint64, text string) error {
	if !h.known(id) {
		return errFakeNoUser
	}
	h.record(hostCall{Method: "Send", ID: id, Text: text})
	return nil
}

func (h *fakeHost) Broadcast(room, text string) error {
	if h.broadcastErr != nil {
		return h.broadcastErr
	}
	h.record(hostCall{Method: "Broadcast", Room: room, Text: text})
	return nil
}

func (h *fakeHost) Action(id uint64, text string) error {
	if !h.known(id) {
		return errFakeNoUser
	}
	h.record(hostCall{Method: "Action", ID: id, Text: text})
	return nil
}

func (h *fakeHost) Rename(id uint64, name string) (string, error) {
	if !h.known(id) {
		return "", errFakeNoUser
	}
	if strings.ContainsAny(name, ": ") {
		return "", errors.New("bad name")
	}
	h.mu.Lock()
	given := name
	for _, u := range h.users {
		if u.Name == name && u.SessionID != id {
			given = name + "-2"
		}
	}
	for i := range h.users {
		if h.users[i].SessionID == id {
			h.users[i].Name = given
		}
	}
	h.mu.Unlock()
	h.record(hostCall{Method: "Rename", ID: id, Text: name})
	return given, nil
}

func (h *fakeHost) Kick(id uint64, reason string) error {
	if !h.known(id) {
		return errFakeNoUser
	}
	h.record(hostCall{Method: "Kick", ID: id, Text: reason})
	return nil
}

func (h *fakeHost) Users(room string) []chat.User {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chat.User
	for _, u := range h.users {
		if u.Room == room {
			out = append(out, u)
		}
	}
	return out
}

func (h *fakeHost) Rooms() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, u := range h.users {
		if !seen[u.Room] {
			seen[u.Room] = true
			out = append(out, u.Room)
		}
	}
	return out
}

func (h *fakeHost) History(room string, n int) ([]chat.Message, error) {
	h.record(hostCall{Method: "History", Room: room, N: n})
	if h.histErr != nil {
		return nil, h.histErr
	}
	var out []chat.Message
	for _, m := range h.history {
		if m.Room == room {
			out = append(out, m)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

func (h *fakeHost) HistoryFor(sessionID uint64, room string, n int) ([]chat.Message, error) {
	h.record(hostCall{Method: "HistoryFor", ID: sessionID, Room: room, N: n})
	return h.History(room, n)
}

// DeleteMessage records the call and returns deleteErr (when set).
func (h *fakeHost) DeleteMessage(sessionID uint64, room string, id uint64) error {
	h.record(hostCall{Method: "DeleteMessage", ID: sessionID, Room: room, N: int(id)})
	return h.deleteErr
}

func (h *fakeHost) Redact(room string, id uint64) error {
	h.record(hostCall{Method: "Redact", Room: room, N: int(id)})
	if h.redactErr != nil {
		return h.redactErr
	}
	return nil
}

// Grant and Revoke change the member's roles as core/chat does: the
// built-in roles are refused, a member who left is ErrNoSuchUser, and
// granting a role held (or revoking one lacking) changes nothing.
func (h *fakeHost) Grant(sessionID uint64, role string) error {
	return h.changeRole("Grant", sessionID, role, true)
}

func (h *fakeHost) Revoke(sessionID uint64, role string) error {
	return h.changeRole("Revoke", sessionID, role, false)
}

func (h *fakeHost) changeRole(method string, id uint64, role string, grant bool) error {
	if role == chat.RoleGuest || role == chat.RoleUser {
		return chat.ErrBuiltinRole
	}
	h.mu.Lock()
	found := false
	for i := range h.users {
		u := &h.users[i]
		if u.SessionID != id {
			continue
		}
		found = true
		switch {
		case grant && !slices.Contains(u.Roles, role):
			u.Roles = append(slices.Clone(u.Roles), role)
		case !grant:
			u.Roles = slices.DeleteFunc(slices.Clone(u.Roles), func(r string) bool { return r == role })
		}
	}
	h.mu.Unlock()
	if !found {
		return chat.ErrNoSuchUser
	}
	h.record(hostCall{Method: method, ID: id, Text: role})
	return nil
}

// Limits and SetLimits keep each member's flood limits as core/chat
// does: a member who left is ErrNoSuchUser, limits that cannot work wrap
// chat.ErrInvalidLimits.
func (h *fakeHost) Limits(id uint64) (chat.Limits, error) {
	if !h.known(id) {
		return chat.Limits{}, chat.ErrNoSuchUser
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if l, ok := h.limits[id]; ok {
		return l, nil
	}
	return defaultLimits, nil
}

func (h *fakeHost) SetLimits(id uint64, l chat.Limits) error {
	if l.Rate < 0 || l.Rate > 0 && l.Burst < 1 {
		return fmt.Errorf("%w: rate %v, burst %d", chat.ErrInvalidLimits, l.Rate, l.Burst)
	}
	if !h.known(id) {
		return chat.ErrNoSuchUser
	}
	h.mu.Lock()
	if h.limits == nil {
		h.limits = make(map[uint64]chat.Limits)
	}
	h.limits[id] = l
	h.mu.Unlock()
	h.record(hostCall{Method: "SetLimits", ID: id, Text: fmt.Sprint(l.Rate), N: l.Burst})
	return nil
}

// user returns the member with session id as the host has it now.
func (h *fakeHost) user(id uint64) chat.User {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.users {
		if u.SessionID == id {
			return u
		}
	}
	return chat.User{}
}

// Restrict, Lift, Restrictions, SetRoomSettings, RoomSettings and Audit
// keep state as core/chat does: a restriction replaces the one of the
// same kind, room and target, every change is audited as by, and
// Restrictions(room) includes those of every room ("").
func (h *fakeHost) Restrict(kind chat.RestrictionKind, room string, t chat.Target, d time.Duration, reason, by string) error {
	h.record(hostCall{Method: "Restrict", Room: room, Text: string(kind) + " " + t.Account + t.Name + t.Addr + " " + reason, N: int(d / time.Second)})
	if h.restrictErr != nil {
		return h.restrictErr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	r := chat.Restriction{Kind: kind, Room: room, Target: t, Created: now, By: by, Reason: reason}
	if d > 0 {
		r.Expires = now.Add(d)
	}
	h.restrictions = slices.DeleteFunc(h.restrictions, func(o chat.Restriction) bool {
		return o.Kind == kind && o.Room == room && o.Target == t
	})
	h.restrictions = append(h.restrictions, r)
	h.audit = append(h.audit, chat.AuditEntry{Time: now, Room: room, By: by, Action: string(kind), Target: t.Account + t.Name + t.Addr, Reason: reason})
	return nil
}

func (h *fakeHost) Lift(kind chat.RestrictionKind, room string, t chat.Target, by string) (bool, error) {
	h.record(hostCall{Method: "Lift", Room: room, Text: string(kind) + " " + t.Account + t.Name + t.Addr})
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.restrictions)
	h.restrictions = slices.DeleteFunc(h.restrictions, func(o chat.Restriction) bool {
		return o.Kind == kind && o.Room == room && o.Target == t
	})
	if len(h.restrictions) == n {
		return false, nil
	}
	h.audit = append(h.audit, chat.AuditEntry{Time: time.Now(), Room: room, By: by, Action: "un" + string(kind), Target: t.Account + t.Name + t.Addr})
	return true, nil
}

func (h *fakeHost) Restrictions(room string) []chat.Restriction {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chat.Restriction
	for _, r := range h.restrictions {
		if r.Room == room || r.Room == "" {
			out = append(out, r)
		}
	}
	return out
}

func (h *fakeHost) SetRoomSettings(room string, s chat.RoomSettings, by string) error {
	h.record(hostCall{Method: "SetRoomSettings", Room: room, Text: s.Topic, N: int(s.Slow / time.Second)})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.settings == nil {
		h.settings = make(map[string]chat.RoomSettings)
	}
	h.settings[room] = s
	h.audit = append(h.audit, chat.AuditEntry{Time: time.Now(), Room: room, By: by, Action: "settings", Target: room, Reason: s.Topic})
	return nil
}

func (h *fakeHost) RoomSettings(room string) chat.RoomSettings {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.settings[room]
}

func (h *fakeHost) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	h.record(hostCall{Method: "Audit", Room: room, Text: fmt.Sprint(since.Unix()), N: n})
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chat.AuditEntry
	for _, e := range h.audit {
		if (room == "" || e.Room == room) && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// KickBy and RedactBy are core/chat's audited Kick and Redact
// (auditedHost): recorded with " by " and who.
func (h *fakeHost) KickBy(id uint64, reason, by string) error {
	if !h.known(id) {
		return errFakeNoUser
	}
	h.record(hostCall{Method: "KickBy", ID: id, Text: reason + " by " + by})
	return nil
}

func (h *fakeHost) RedactBy(room string, id uint64, by string) error {
	h.record(hostCall{Method: "RedactBy", Room: room, Text: "by " + by, N: int(id)})
	return h.redactErr
}

// May decides with h.rules as core/chat does: the member's roles now,
// and without rules nobody moderates.
func (h *fakeHost) May(id uint64, room string, action chat.Action) (bool, error) {
	if !h.known(id) {
		return false, chat.ErrNoSuchUser
	}
	u := h.user(id)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rules.Allows(room, u.Roles, action), nil
}

// noMemoryLimit is Options.MaxMemory for tests of other limits: 1 TiB,
// which no test allocates, so only the limit under test can stop a call.
const noMemoryLimit = 1 << 40

// take returns and forgets the calls recorded so far.
func (h *fakeHost) take() []hostCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

// logBuf is a concurrency-safe buffer for a test logger.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	alice = chat.User{SessionID: 1, Name: "alice", Room: "lobby", Addr: "127.0.0.1:5001", Roles: []string{"guest"}}
	bob   = chat.User{SessionID: 2, Name: "bob", Room: "lobby", Addr: "127.0.0.1:5002", Roles: []string{"guest"}}
	carol = chat.User{SessionID: 3, Name: "carol", Room: "dev", Addr: "127.0.0.1:5003", Roles: []string{"guest"}}
)

// rig is an engine with a fake host, an in-memory KV and a captured log.
type rig struct {
	e    *Engine
	host *fakeHost
	kv   *MemKV
	log  *logBuf
}

func scriptFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src), ModTime: time.Now()}
	}
	return fsys
}

func newRig(t testing.TB, files map[string]string) *rig {
	t.Helper()
	return newRigOpts(t, Options{FS: scriptFS(files)})
}

func newRigOpts(t testing.TB, opts Options) *rig {
	t.Helper()
	r := &rig{host: &fakeHost{users: []chat.User{alice, bob, carol}}, kv: NewMemKV(), log: &logBuf{}}
	if opts.KV == nil {
		opts.KV = r.kv
	}
	if opts.HookTimeout == 0 {
		// Tests that are not about the time limit must not trip it when a
		// loaded machine (or -race) deschedules a trivial hook for a while.
		opts.HookTimeout = 5 * time.Second
	}
	opts.Logger = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.Bind(r.host)
	t.Cleanup(func() { e.Close() })
	r.e = e
	return r
}

// say runs the message hook for u and text.
func (r *rig) say(u chat.User, text string) chat.MessageResult {
	return r.e.Message(context.Background(), u, &chat.Message{Room: u.Room, User: u.Name, Text: text, Time: time.Now()})
}

// eventually is chattest.Eventually, under the name these tests use.
var eventually = chattest.Eventually

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}
