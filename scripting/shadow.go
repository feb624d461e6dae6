package scripting

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Shadow scripts ([scripting] shadow, Options.Shadow) are scripts of the
// scripts directory loaded beside the real ones instead of among them, so
// that an operator can watch what a new filter would do on live traffic
// before it decides anything:
//
//   - They get their own Lua state (a shadowGen) built and replaced with
//     the real scripts' generation, under the same semaphore, time limit
//     and memory limit; their failures never reach the chat server.
//   - Their join and message handlers run after the real ones, on the
//     original input (the text as sent, the name as asked for), each
//     script's chain on its own. What the chain decided is counted in
//     moonchat_script_shadow_decisions_total{script,decision} and, when it
//     is not a pass, logged with what the real scripts decided. It is
//     never applied. Leave and rename handlers run too (they decide
//     nothing). Commands, timers and connect/login handlers of a shadow
//     script are loaded but never run.
//   - Their chat.* table talks to a recordingHost: reading calls
//     (chat.users, chat.rooms, chat.history, chat.may, …) see the real
//     server; every call with a side effect (chat.send, broadcast, kick,
//     rename, ban, redact, grant, set_room_settings, direct, ignore, …) is
//     logged and counted in moonchat_script_shadow_calls_total and not
//     done, returning what success would. chat.kv reads the script's real
//     namespace and writes to an overlay in memory, dropped at reload.
type shadowGen struct {
	st   *state
	host *recordingHost
	// byScript is each shadow script's handlers per event, in priority
	// order, so that each script's chain is decided on its own.
	byScript []shadowScript
}

type shadowScript struct {
	name     string
	handlers [numEvents][]handler
}

// shadowState is the shadow generation's state (nil without one).
func (st *state) shadowState() *state {
	if st == nil || st.shadow == nil {
		return nil
	}
	return st.shadow.st
}

// filterFS shows only the top-level *.lua files keep accepts (the rest of
// the tree as it is), so that one scripts directory gives both the real
// scripts and the shadow ones.
type filterFS struct {
	fs.FS
	keep func(name string) bool
}

// ReadDir implements fs.ReadDirFS: the top directory filtered.
func (f filterFS) ReadDir(name string) ([]fs.DirEntry, error) {
	des, err := fs.ReadDir(f.FS, name)
	if err != nil || name != "." {
		return des, err
	}
	return slices.DeleteFunc(des, func(de fs.DirEntry) bool { return !de.IsDir() && !f.keep(de.Name()) }), nil
}

// Open implements fs.FS: a filtered-out file does not exist.
func (f filterFS) Open(name string) (fs.File, error) {
	if name != "." && !f.keep(name) {
		if fi, err := fs.Stat(f.FS, name); err == nil && !fi.IsDir() {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
	}
	return f.FS.Open(name)
}

// liveFS is fsys without the shadow scripts; shadowFS has only them.
func liveFS(fsys fs.FS, shadow []string) fs.FS {
	if len(shadow) == 0 {
		return fsys
	}
	return filterFS{fsys, func(n string) bool { return !slices.Contains(shadow, n) }}
}

func shadowFS(fsys fs.FS, shadow []string) fs.FS {
	return filterFS{fsys, func(n string) bool { return slices.Contains(shadow, n) }}
}

// buildShadow loads the shadow scripts of fsys into a state of their own.
// A shadow name with no such file is an error, as is a script that does
// not load; the caller decides what that means (the engine logs it and
// runs without shadows, Check reports it). nil, nil without shadows.
func buildShadow(ctx context.Context, sh *shared, fsys fs.FS, opts ScriptOptions, shadow []string) (*shadowGen, error) {
	if len(shadow) == 0 {
		return nil, nil
	}
	for _, n := range shadow {
		if fi, err := fs.Stat(fsys, n); err != nil || fi.IsDir() {
			return nil, fmt.Errorf("shadow script %s: no such file in the scripts directory", n)
		}
	}
	rh := &recordingHost{sh: sh}
	ssh := &shared{
		kv: &overlayKV{real: sh.kv, vals: map[[2]string]*string{}}, log: sh.log.With("shadow", true),
		hookTimeout: sh.hookTimeout, loadTimeout: sh.loadTimeout, maxText: sh.maxText, maxMemory: sh.maxMemory,
		pw: sh.pw, metrics: sh.metrics, disableAfter: sh.disableAfter,
	}
	ssh.host.Store(&hostBox{rh})
	rh.log = ssh.log
	rh.script = "(loading)"
	st, err := buildState(ctx, ssh, shadowFS(fsys, shadow), opts)
	if err != nil {
		return nil, fmt.Errorf("shadow scripts: %w", err)
	}
	st.observe(true)
	g := &shadowGen{st: st, host: rh}
	for _, name := range st.scripts {
		s := shadowScript{name: name}
		for ev := range st.handlers {
			for _, h := range st.handlers[ev] {
				if h.script == name {
					s.handlers[ev] = append(s.handlers[ev], h)
				}
			}
		}
		g.byScript = append(g.byScript, s)
	}
	return g, nil
}

// has reports whether a shadow script handles ev.
func (g *shadowGen) has(ev event) bool { return g != nil && len(g.st.handlers[ev]) > 0 }

// decide counts and, unless it is a pass, logs one shadow script's
// decision. live is what the real scripts decided.
func (g *shadowGen) decide(script, ev, decision, live string, u chat.User, attrs ...any) {
	if m := g.st.sh.metrics; m != nil {
		m.shadowDecisions.WithLabelValues(script, decision).Inc()
	}
	if decision == "pass" || decision == "admit" {
		return
	}
	args := append([]any{"script", script, "event", ev, "decision", decision, "live", live, "room", u.Room, "user", u.Name}, attrs...)
	g.st.sh.log.Info("lua shadow decision (not applied)", args...)
}

// message runs each shadow script's message chain on m as sent. Caller
// holds the engine's semaphore.
func (g *shadowGen) message(u chat.User, m *chat.Message, live chat.MessageResult) {
	st := g.st
	liveD := messageDecision(live)
	for i := range g.byScript {
		s := &g.byScript[i]
		if len(s.handlers[evMessage]) == 0 {
			continue
		}
		g.host.script = s.name
		res := st.runMessageChain(s.handlers[evMessage], u, m)
		d := messageDecision(res)
		switch d {
		case "drop":
			g.decide(s.name, "message", d, liveD, u, "text", m.Text, "reason", res.Reason)
		case "rewrite":
			g.decide(s.name, "message", d, liveD, u, "text", m.Text, "new_text", res.Text)
		case "error":
			g.decide(s.name, "message", d, liveD, u, "text", m.Text, "error", res.Err)
		default:
			g.decide(s.name, "message", d, liveD, u)
		}
	}
}

// messageDecision names what a message chain decided.
func messageDecision(r chat.MessageResult) string {
	switch {
	case r.Err != nil:
		return "error"
	case r.Drop:
		return "drop"
	case r.Replace:
		return "rewrite"
	}
	return "pass"
}

// join runs each shadow script's join chain for u as they asked to join.
func (g *shadowGen) join(u chat.User, live chat.JoinResult) {
	liveD := joinDecision(live)
	for i := range g.byScript {
		s := &g.byScript[i]
		if len(s.handlers[evJoin]) == 0 {
			continue
		}
		g.host.script = s.name
		res := g.st.runJoinChain(s.handlers[evJoin], u)
		d := joinDecision(res)
		switch d {
		case "refuse":
			g.decide(s.name, "join", d, liveD, u, "reason", res.Reason)
		case "rename":
			g.decide(s.name, "join", d, liveD, u, "new_name", res.Name)
		case "error":
			g.decide(s.name, "join", d, liveD, u, "error", res.Err)
		default:
			g.decide(s.name, "join", d, liveD, u)
		}
	}
}

// joinDecision names what a join chain decided.
func joinDecision(r chat.JoinResult) string {
	switch {
	case r.Err != nil:
		return "error"
	case r.Refuse:
		return "refuse"
	case r.Name != "":
		return "rename"
	}
	return "admit"
}

// notify runs the shadow scripts' leave or rename handlers; failures are
// only counted (per-handler series) and logged at debug.
func (g *shadowGen) notify(ev event, u chat.User, old string) {
	for i := range g.byScript {
		s := &g.byScript[i]
		if len(s.handlers[ev]) == 0 {
			continue
		}
		g.host.script = s.name
		if err := g.st.runNotify(s.handlers[ev], ev, u, old); err != nil {
			g.st.sh.log.Debug("lua shadow handler failed", "script", s.name, "event", eventNames[ev], "error", err)
		}
	}
}

// recordingHost is the chat.Host of shadow scripts: reads go to the real
// host, side effects are logged and counted, never done, and answered as
// a success would be. script is the shadow script being run (set by the
// engine before each chain, under its semaphore).
type recordingHost struct {
	sh     *shared // the real scripts' (its host is the chat server)
	log    interface{ Info(string, ...any) }
	script string
}

var (
	_ chat.Host     = (*recordingHost)(nil)
	_ chat.Ignorer  = (*recordingHost)(nil)
	_ chat.Directer = (*recordingHost)(nil)
)

// record logs and counts one call not done.
func (r *recordingHost) record(call string, args ...any) {
	if m := r.sh.metrics; m != nil {
		m.shadowCalls.WithLabelValues(r.script, call).Inc()
	}
	r.log.Info("lua shadow call not done", append([]any{"script", r.script, "call", "chat." + call}, args...)...)
}

func (r *recordingHost) real() chat.Host { return r.sh.hostOf() }

// Send implements chat.Host: recorded.
func (r *recordingHost) Send(s uint64, text string) error {
	r.record("send", "session", s, "text", text)
	return nil
}

// Broadcast implements chat.Host: recorded.
func (r *recordingHost) Broadcast(room, text string) error {
	r.record("broadcast", "room", room, "text", text)
	return nil
}

// Action implements chat.Host: recorded.
func (r *recordingHost) Action(s uint64, text string) error {
	r.record("action", "session", s, "text", text)
	return nil
}

// Rename implements chat.Host: recorded; the name asked for is "given".
func (r *recordingHost) Rename(s uint64, name string) (string, error) {
	r.record("rename", "session", s, "name", name)
	return name, nil
}

// Kick implements chat.Host: recorded.
func (r *recordingHost) Kick(s uint64, reason string) error {
	r.record("kick", "session", s, "reason", reason)
	return nil
}

// Users implements chat.Host: the real members.
func (r *recordingHost) Users(room string) []chat.User { return r.real().Users(room) }

// Rooms implements chat.Host: the real rooms.
func (r *recordingHost) Rooms() []string { return r.real().Rooms() }

// History implements chat.Host: the real history.
func (r *recordingHost) History(room string, n int) ([]chat.Message, error) {
	return r.real().History(room, n)
}

// HistoryFor implements chat.Host: the real history, as the member may read it.
func (r *recordingHost) HistoryFor(s uint64, room string, n int) ([]chat.Message, error) {
	return r.real().HistoryFor(s, room, n)
}

// Redact implements chat.Host: recorded.
func (r *recordingHost) Redact(room string, id uint64) error {
	r.record("redact", "room", room, "id", id)
	return nil
}

// DeleteMessage implements chat.Host: recorded.
func (r *recordingHost) DeleteMessage(s uint64, room string, id uint64) error {
	r.record("delete", "session", s, "room", room, "id", id)
	return nil
}

// Grant implements chat.Host: recorded.
func (r *recordingHost) Grant(s uint64, role string) error {
	r.record("grant", "session", s, "role", role)
	return nil
}

// Revoke implements chat.Host: recorded.
func (r *recordingHost) Revoke(s uint64, role string) error {
	r.record("revoke", "session", s, "role", role)
	return nil
}

// Restrict implements chat.Host: recorded (chat.ban, chat.mute).
func (r *recordingHost) Restrict(kind chat.RestrictionKind, room string, t chat.Target, d time.Duration, reason, by string) error {
	r.record(restrictCall(kind, ""), "room", room, "target", fmt.Sprintf("%+v", t), "duration", d, "reason", reason)
	return nil
}

// Lift implements chat.Host: recorded (chat.unban, chat.unmute); nothing
// was lifted.
func (r *recordingHost) Lift(kind chat.RestrictionKind, room string, t chat.Target, by string) (bool, error) {
	r.record(restrictCall(kind, "un"), "room", room, "target", fmt.Sprintf("%+v", t))
	return false, nil
}

// restrictCall names the chat.* function of a restriction kind.
func restrictCall(kind chat.RestrictionKind, prefix string) string {
	if kind == chat.KindMute {
		return prefix + "mute"
	}
	return prefix + "ban"
}

// Restrictions implements chat.Host: the real ones.
func (r *recordingHost) Restrictions(room string) []chat.Restriction {
	return r.real().Restrictions(room)
}

// SetRoomSettings implements chat.Host: recorded.
func (r *recordingHost) SetRoomSettings(room string, s chat.RoomSettings, by string) error {
	r.record("set_room_settings", "room", room, "settings", fmt.Sprintf("%+v", s))
	return nil
}

// RoomSettings implements chat.Host: the real ones.
func (r *recordingHost) RoomSettings(room string) chat.RoomSettings {
	return r.real().RoomSettings(room)
}

// Audit implements chat.Host: the real log.
func (r *recordingHost) Audit(room string, since time.Time, n int) ([]chat.AuditEntry, error) {
	return r.real().Audit(room, since, n)
}

// May implements chat.Host: the real rules.
func (r *recordingHost) May(s uint64, room string, a chat.Action) (bool, error) {
	return r.real().May(s, room, a)
}

// Limits implements chat.Host: the real limits.
func (r *recordingHost) Limits(s uint64) (chat.Limits, error) { return r.real().Limits(s) }

// SetLimits implements chat.Host: recorded (chat.limits with new limits).
func (r *recordingHost) SetLimits(s uint64, l chat.Limits) error {
	r.record("limits", "session", s, "rate", l.Rate, "burst", l.Burst)
	return nil
}

// Ignore implements chat.Ignorer: recorded.
func (r *recordingHost) Ignore(s uint64, t chat.IgnoreTarget) error {
	r.record("ignore", "session", s, "target", fmt.Sprintf("%+v", t))
	return nil
}

// Unignore implements chat.Ignorer: recorded; nothing was on the list.
func (r *recordingHost) Unignore(s uint64, t chat.IgnoreTarget) (bool, error) {
	r.record("unignore", "session", s, "target", fmt.Sprintf("%+v", t))
	return false, nil
}

// Ignored implements chat.Ignorer: the real list when the server keeps
// one, else none.
func (r *recordingHost) Ignored(s uint64) ([]chat.IgnoreTarget, error) {
	if ih, ok := r.real().(chat.Ignorer); ok {
		return ih.Ignored(s)
	}
	return nil, nil
}

// Direct implements chat.Directer: recorded.
func (r *recordingHost) Direct(s uint64, to, text string) error {
	r.record("direct", "session", s, "to", to, "text", text)
	return nil
}

// overlayKV is a shadow script's chat.kv: reads see the real store under
// the script's own namespace, writes and deletions stay in memory (an
// entry with a nil value is a deletion) and are gone at the next reload.
type overlayKV struct {
	real KV
	mu   sync.Mutex // the engine's semaphore already serialises; cheap insurance
	vals map[[2]string]*string
}

// Get implements KV.
func (o *overlayKV) Get(script, key string) (string, bool, error) {
	o.mu.Lock()
	v, ok := o.vals[[2]string{script, key}]
	o.mu.Unlock()
	if ok {
		if v == nil {
			return "", false, nil
		}
		return *v, true, nil
	}
	return o.real.Get(script, key)
}

// Set implements KV: in memory only.
func (o *overlayKV) Set(script, key, value string) error {
	o.mu.Lock()
	o.vals[[2]string{script, key}] = &value
	o.mu.Unlock()
	return nil
}

// Delete implements KV: in memory only.
func (o *overlayKV) Delete(script, key string) error {
	o.mu.Lock()
	o.vals[[2]string{script, key}] = nil
	o.mu.Unlock()
	return nil
}

// Keys implements KV: the real keys with the overlay's changes.
func (o *overlayKV) Keys(script string) ([]string, error) {
	keys, err := o.real.Keys(script)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, v := range o.vals {
		if k[0] != script {
			continue
		}
		i := slices.Index(keys, k[1])
		switch {
		case v == nil && i >= 0:
			keys = slices.Delete(keys, i, i+1)
		case v != nil && i < 0:
			keys = append(keys, k[1])
		}
	}
	sort.Strings(keys)
	return keys, nil
}
