package chat

import (
	"strconv"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// roster is who is in a room.
//
// Invariants:
//   - only the room goroutine adds or removes members (join, remove,
//     leaveAll), and it does so under mu; Host.Rename changes names under
//     mu too. So Host methods read members and names under mu without
//     waiting for the room goroutine;
//   - members is in join order and holds exactly the room's members whose
//     joined flag is set; names holds the look-alike keys of their names
//     (names.go);
//   - plain and json are the same members split by wire format: the
//     fan-out lists, read and written by the room goroutine alone (no
//     lock);
//   - remote is the other nodes' members (cluster presence, remote.go),
//     under mu like members; their names are taken in the room too;
//   - refused is set only while a name is being claimed for the cluster
//     (claimName, under mu): the keys of the names the cluster refused,
//     taken for the next variant; reserved only while a run of joins is
//     being claimed (joinRun): the keys of the names chosen for them, each
//     to its joiner, taken too.
type roster struct {
	mu       sync.Mutex
	members  []*member
	names    nameTable
	remote   remoteRoster
	refused  map[string]bool
	reserved map[string]*member

	plain, json []*member
}

// taken reports whether name, or a look-alike, is used in the room (by a
// member of this node or another); mu must be held.
func (ro *roster) taken(name string) bool {
	if len(ro.remote.names) == 0 && ro.refused == nil && ro.reserved == nil {
		return ro.names.taken(name)
	}
	for _, k := range nameKeys(name) {
		if _, ok := ro.names[k]; ok || ro.remote.names[k] != nil || ro.refused[k] || ro.reserved[k] != nil {
			return true
		}
	}
	return false
}

// count is the number of members, this node's and the other nodes'.
func (ro *roster) count() int { return len(ro.members) + ro.remote.len() }

// memberNames appends the member names: this node's in join order, then
// the other nodes' (remote.go).
func (ro *roster) memberNames(names []string) []string {
	for _, m := range ro.members {
		names = append(names, m.currentName())
	}
	for _, rm := range ro.remote.order {
		if rm != nil {
			names = append(names, rm.e.Name)
		}
	}
	return names
}

// join admits m: the join hook, a unique name, the replay, then
// membership. No chat message is in the outbox at this point, so every
// message broadcast so far is in history (and in the replay) and every
// later one reaches m live.
func (r *room) join(m *member) {
	if name, ok := r.admit(m); ok {
		r.enter(m, name, nil)
	}
}

// admit is the first part of a join: the room rules, bans and the join
// hook. It returns the name m asks for (the hook's), or false when m was
// refused.
func (r *room) admit(m *member) (string, bool) {
	s := r.srv
	if m.gone.Load() {
		return "", false
	}
	name := m.requested
	if name == "" {
		name = "guest-" + strconv.FormatUint(s.guestSeq.Add(1), 10)
	}
	if reason := s.readRefusal(r.name, m.currentRoles()); reason != "" {
		// Before the join hook: scripts never see a member the room
		// rules keep out.
		s.log.Info("chat: join refused by the room rules", "room", r.name, "remote", m.addr)
		s.refuse(m, ws.StatusPolicyViolation, reason)
		return "", false
	}
	if !r.joinAllowed(m, name) {
		return "", false
	}
	if s.hooks != nil {
		requested := name
		var ok bool
		if name, ok = r.joinHook(m, name); !ok {
			return "", false
		}
		if name != requested && !r.joinAllowed(m, name) {
			r.leaveHookAs(m, name) // the join hook accepted m
			return "", false
		}
	}
	if r.out.chatMsgs > 0 {
		// Chat messages still in the outbox are in history already: they
		// must not reach m twice (replay and live). (post flushes at the
		// end of every run, so this is a safety net.) Notices and presence
		// may stay: they are not in the replay, and leaving them lets a
		// burst of joins share one flush and one presence event. (Given to
		// the sweepers before m's add, they do not reach m.)
		r.flush()
	}
	return name, true
}

// enter is the rest of a join, for m admitted asking for name: a name
// unique in the room (claimed for the cluster with Config.Presence), the
// welcome, replay and presence list, then membership and the
// announcement. pre is the claim joinRun made for m already (nil: none).
func (r *room) enter(m *member, name string, pre *preclaim) {
	s := r.srv
	if pre == nil {
		r.releasePending() // names left in this batch are free for the claim
	}
	ro := &r.roster
	ro.mu.Lock()
	wanted := name
	name, err := r.claimFor(m, name, pre) // for the cluster too (remote.go)
	if err != nil {
		ro.mu.Unlock()
		s.log.Warn("chat: join refused: the name could not be claimed for the cluster", "room", r.name, "remote", m.addr, "name", wanted, "err", err)
		s.refuseClaim(m, err)
		if s.hooks != nil {
			r.leaveHookAs(m, wanted)
		}
		return
	}
	if err := s.recordOwner(m, wanted, name); err != nil {
		ro.mu.Unlock()
		s.releaseClaim(r.name, m)
		s.refuse(m, ws.StatusTryAgainLater, reasonOf(err))
		if s.hooks != nil {
			// The join hook accepted m: scripts get the leave that
			// goes with it, under the name they gave or saw.
			r.leaveHookAs(m, wanted)
		}
		return
	}
	m.name.Store(&name)
	ro.names.add(name, m)
	s.holdName(m, name)
	ro.members = append(ro.members, m)
	m.joined.Store(true)
	ro.mu.Unlock()
	if s.broker != nil && m.hasSince && r.ensureDelivered() && m.since > r.dl.last {
		// Resumed from a node further along the log: the messages up
		// to since are not replayed here (not delivered yet) and must
		// not come live either (deliver.go).
		m.liveAfter = m.since
	}
	s.loadIgnores(m) // before the replay, which it filters
	r.ignoresChanged(m)
	s.startExpiry(m) // before the welcome: a refresh may follow it
	held := r.holdAnnouncements()
	r.presenceJoined(name)

	// Welcome, replay (or resume) and the full presence list, as one
	// write, before any room-wide event about this join.
	var frames [][]byte
	if m.format == formatJSON {
		frames = append(frames, appendJSONWelcome(nil, r.name, name))
	}
	frames = append(frames, r.settingsFrames(m)...) // topic, slow mode (moderation.go)
	frames = append(frames, r.replay(m)...)
	if m.format == formatJSON {
		base := r.presenceBase(name)
		frames = append(frames, withAccounts(appendJSONPresence(nil, r.name, base), r.presenceAccounts(base)))
	}
	if len(frames) > 0 {
		m.writePrepared(ws.NewPrepared(ws.OpText, frames...))
	}

	if m.format == formatJSON {
		ro.json = append(ro.json, m)
	} else {
		ro.plain = append(ro.plain, m)
	}
	if r.fan.sweepers != nil {
		r.assign(m)
	}
	if held {
		return // announced by releaseHeld
	}
	r.outPresence()
	r.outSystem(name + " joined")
}

// announceJoined records and announces that another node's member name
// joined (remote.go), as join does for this node's members: the members
// changed already.
func (r *room) announceJoined(name string) {
	held := r.holdAnnouncements()
	r.presenceJoined(name)
	if !held { // else announced by releaseHeld
		r.outPresence()
		r.outSystem(name + " joined")
	}
}

// announceLeft is announceJoined for a leave, as remove announces one.
func (r *room) announceLeft(name string) {
	held := r.holdAnnouncements()
	r.presenceLeft(name)
	if !held { // else announced by releaseHeld
		r.outSystem(name + " left")
		r.outPresence()
	}
}

// joinAllowed refuses m (close 1008 with the reason) when a ban matches
// it joining as name: a ban made since its handshake, or on the name a
// guest was given (moderation.go).
func (r *room) joinAllowed(m *member, name string) bool {
	s := r.srv
	if s.mod.idx.Load().n == 0 {
		return true
	}
	reason := s.banRefusal(r.name, m.subject(name), m.addr)
	if reason == "" {
		return true
	}
	s.refuse(m, ws.StatusPolicyViolation, reason)
	return false
}

// joinHook runs Hooks.Join for m, who asks to join as name. It returns
// the name to use, or false when m was refused (and told why: the
// connection is closing).
func (r *room) joinHook(m *member, name string) (string, bool) {
	s := r.srv
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
			return "", false
		}
		s.hookFailed(hookKindJoin, u, res.Err, "carrying on ([scripting] on_failure = \"deliver\")")
	}
	if res.Refuse {
		reason := res.Reason
		if reason == "" {
			reason = "refused by the server"
		}
		s.refuse(m, ws.StatusPolicyViolation, reason)
		return "", false
	}
	if res.Name != "" {
		if given, err := checkName(res.Name, s.cfg.MaxNameLength); err != nil {
			s.log.Warn("chat: join hook returned an invalid name; keeping the requested one",
				"room", r.name, "name", res.Name, "err", err)
		} else {
			name = given
		}
	}
	return name, true
}

// remove takes m out of the room at once and puts the announcement in the
// outbox. It serves members who left (opLeave: the outbox is not flushed
// first; what is in it was meant for m too, but m is gone) and members the
// server dropped itself (kicked, slow consumers): their connection's
// OnClose may come only after the closing handshake times out, and the
// room should not wait for that.
func (r *room) remove(m *member) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	s.stopExpiry(m)
	ro := &r.roster
	ro.mu.Lock()
	name := m.currentName()
	ro.names.remove(name, m)
	s.releaseName(m, name)
	ro.members = removeMember(ro.members, m)
	m.joined.Store(false)
	ro.mu.Unlock()
	r.releaseLater(m) // from the cluster's roster, after the batch (remote.go)
	r.ignoresChanged(m)
	if m.format == formatJSON {
		ro.json = removeMember(ro.json, m)
	} else {
		ro.plain = removeMember(ro.plain, m)
	}
	if r.fan.sweepers != nil {
		r.unassign(m)
	}
	r.announceLeft(name)
	if s.hooks != nil {
		r.leaveHook(m)
	}
}

// leaveHook runs Hooks.Leave for m, who has left.
func (r *room) leaveHook(m *member) { r.leaveHookAs(m, m.currentName()) }

// leaveHookAs runs Hooks.Leave for m under name.
func (r *room) leaveHookAs(m *member, name string) {
	s := r.srv
	u := m.user()
	u.Name = name
	start := time.Now()
	err := s.hooks.Leave(s.ctx, u)
	s.metrics.hookLeave.observeSince(start)
	if err != nil {
		s.hookFailed(hookKindLeave, u, err, "the member has left regardless")
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
	r.waitForPasses()
	ro := &r.roster
	ro.mu.Lock()
	left := ro.members
	ro.members = nil
	clear(ro.names)
	for _, m := range left {
		m.joined.Store(false)
		s.releaseName(m, m.currentName())
	}
	ro.mu.Unlock()
	for _, m := range left {
		s.stopExpiry(m)
		r.releaseLater(m)
	}
	r.releasePending()
	ro.plain, ro.json = nil, nil
	if s.hooks == nil {
		return
	}
	for _, m := range left {
		r.leaveHook(m)
	}
}

// renamed announces a rename already made by Host.Rename.
func (r *room) renamed(m *member, old string) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	name := m.currentName()
	r.announceRename(old, name)
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

// announceRename tells the room that old is now known as name (a member
// of this node or another).
func (r *room) announceRename(old, name string) {
	// The pending presence delta names old, if anything: it is closed
	// here so that the rename event follows it and later joins and leaves
	// go into a new delta. Held announcements go out first for the same
	// reason (they name old).
	r.releaseHeld()
	r.closePresence()
	if len(r.roster.json) > 0 {
		r.out.addRename(r.name, old, name)
	}
	r.outSystem(old + " is now known as " + name)
}

// kick sends m the reason (if any), closes its connection with code (0:
// 1000) and removes it.
func (r *room) kick(m *member, reason string, code ws.StatusCode) {
	if !m.joined.Load() {
		return
	}
	if code == 0 {
		code = ws.StatusNormalClosure
	}
	r.flushAndWait()
	if reason != "" {
		m.write(m.appendNotice(nil, r.name, reason))
	}
	_ = m.conn.Close(code, closeReason(reason))
	r.remove(m)
}

// removeMember returns list without m, keeping the order.
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

// replay returns the frames m gets from history on joining: the
// Config.Replay newest messages, or with ?since=ID the first page after ID
// (preceded by a gap notice when some of them no longer exist).
func (r *room) replay(m *member) [][]byte {
	s := r.srv
	json := m.format == formatJSON
	if s.history == nil {
		if json {
			return [][]byte{appendJSONHistory(nil, r.name, "join", nil, true, false)}
		}
		return nil
	}
	reason := "join"
	page := historyPage{complete: true}
	var err error
	if m.hasSince {
		reason = "since"
		page, err = r.readPage(pageRequest{after: m.since, hasAfter: true})
	} else if s.cfg.Replay > 0 {
		page, err = r.readPage(pageRequest{limit: s.cfg.Replay})
	}
	if err != nil {
		s.log.Error("chat: reading history for a newcomer failed", "room", r.name, "err", err)
		return [][]byte{m.appendError(nil, codeNoHistory, "history is unavailable right now")}
	}
	page.msgs = s.filterIgnored(m, page.msgs)
	var frames [][]byte
	if json {
		if !page.complete {
			frames = append(frames, r.gapFrame(m.since, page.msgs))
		}
		return append(frames, appendJSONHistory(nil, r.name, reason, page.msgs, page.complete, page.more))
	}
	if !page.complete {
		frames = append(frames, appendPlainNotice(nil, "some messages were lost"))
	}
	var b []byte
	for i := range page.msgs {
		start := len(b)
		b = appendPlainReplay(b, &page.msgs[i])
		frames = append(frames, b[start:len(b):len(b)])
	}
	if page.more && m.hasSince {
		frames = append(frames, appendPlainNotice(nil, "more messages were missed than shown"))
	}
	if len(frames) > 0 {
		// What follows is live (JSON clients have the history event).
		frames = append(frames, appendPlainNotice(nil, plainEndOfHistory))
	}
	return frames
}
