package chat

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strconv"
)

// Reading direct messages (docs/protocol.md, "Direct messages"): the
// moonchat.v1 "conversations" and {"type":"history","with":…} requests,
// answered on the member's room goroutine like a room's history
// requests (paging.go), and GET /api/direct for accounts. Only the
// conversations of the caller are reachable: the key is always made from
// the caller's own side and the peer, never taken from the request.

// ownedName is the name account id owns, or the id when it owns none.
func (s *Server) ownedName(id string) string {
	a := &s.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.owns[id]; n != "" {
		return n
	}
	return id
}

// sideName is what a side is called now: an account's owned name, a
// guest's current name.
func (s *Server) sideName(d dmSide) string {
	switch {
	case d.guest != nil:
		return d.guest.currentName()
	case d.isRemote():
		return s.remoteName(d.remote, d.rname)
	}
	return s.ownedName(d.account)
}

// conversationsOf lists me's conversations, newest first: an account's
// stored ones (ConversationLister, else those of the process's life) and,
// with mem, those kept in memory (with a guest).
func (s *Server) conversationsOf(me dmSide, mem bool) ([]convEntry, error) {
	var out []convEntry
	if me.guest == nil && s.history != nil {
		var stats []ConversationStat
		if l, ok := s.history.(ConversationLister); ok {
			var err error
			if stats, err = l.Conversations(me.account); err != nil {
				return nil, err
			}
		} else {
			stats = s.dm.tracked(me.account)
		}
		for _, st := range stats {
			if !IsConversation(st.Key) || st.Key != ConversationKey(me.account, st.Peer) {
				continue // not this account's: never shown
			}
			out = append(out, convEntry{with: s.ownedName(st.Peer), withID: st.Peer, lastID: st.LastID, lastTime: st.LastTime, count: st.Count})
		}
	}
	if mem {
		for _, st := range s.dm.memStats(me) {
			out = append(out, convEntry{with: s.sideName(st.peer), withID: st.peer.account, lastID: st.lastID, lastTime: st.lastTime, count: st.count})
		}
	}
	slices.SortStableFunc(out, func(a, b convEntry) int {
		if c := b.lastTime.Compare(a.lastTime); c != 0 {
			return c
		}
		return cmp.Compare(b.lastID, a.lastID)
	})
	return out, nil
}

// readPeer resolves the name a reader gives as the other side of one of
// its conversations, as Direct resolves a recipient.
func (s *Server) readPeer(home *room, name string) (dmSide, error) {
	given, err := checkName(name, s.cfg.MaxNameLength)
	if err != nil {
		return dmSide{}, ErrNoSuchRecipient
	}
	if acc, _ := s.accountNamed(given); acc != "" {
		return dmSide{account: acc}, nil
	}
	g, n := s.guestNamed(home, given)
	if n == 1 && g.room == home {
		return dmSide{guest: g}, nil
	}
	homeName := ""
	if home != nil {
		homeName = home.name
	}
	rm, inHome, rn := s.remoteGuestNamed(homeName, given)
	switch {
	case inHome:
		return remoteGuestSide(rm), nil
	case n == 1 && rn == 0:
		return dmSide{guest: g}, nil
	case n == 0 && rn == 1:
		return remoteGuestSide(rm), nil
	}
	return dmSide{}, ErrNoSuchRecipient
}

// directPage reads one page of the conversation of me and peer, as me
// sees it. ErrNoHistory: two accounts on a server without a History.
func (s *Server) directPage(me, peer dmSide, q pageRequest) (historyPage, []dmView, error) {
	var page historyPage
	var fromMe []bool
	switch {
	case me.isGuest() || peer.isGuest():
		var err error
		page, fromMe, err = s.dm.memPage(me, peer, q, s.pageSize(q.limit))
		if err != nil {
			return page, nil, err
		}
	case s.history == nil:
		return page, nil, ErrNoHistory
	default:
		var err error
		if page, err = s.readPage(ConversationKey(me.account, peer.account), q); err != nil {
			return page, nil, err
		}
		fromMe = make([]bool, len(page.msgs))
		for i, msg := range page.msgs {
			fromMe[i] = msg.Account != nil && msg.Account.ID == me.account
		}
	}
	myName, peerName := s.sideName(me), s.sideName(peer)
	views := make([]dmView, len(page.msgs))
	for i := range page.msgs {
		v := dmView{msg: &page.msgs[i], with: peerName, withID: peer.account, from: page.msgs[i].User, to: myName}
		if fromMe[i] {
			v.to = peerName
		}
		views[i] = v
	}
	return page, views, nil
}

// answerConversations answers m's "conversations" request (opConvList).
func (r *room) answerConversations(m *member) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	list, err := s.conversationsOf(sideOf(m), true)
	if err != nil {
		s.log.Error("chat: listing conversations failed", "session", m.id, "err", err)
		m.write(appendJSONError(nil, codeNoHistory, "conversations are unavailable right now"))
		return
	}
	m.write(appendJSONConversations(nil, list))
}

// answerDirectHistory answers m's {"type":"history","with":…} request
// (opDirectPage). A message may come both in a page and live (it was
// stored as the page was read): its id tells.
func (r *room) answerDirectHistory(m *member, with string, q pageRequest) {
	s := r.srv
	if !m.joined.Load() {
		return
	}
	peer, err := s.readPeer(r, with)
	if err != nil {
		m.write(appendJSONError(nil, codeNoSuchUser, "no such user: "+with))
		return
	}
	page, views, err := s.directPage(sideOf(m), peer, q)
	switch {
	case errors.Is(err, ErrNoHistory):
		m.write(appendJSONError(nil, codeNoHistory, "this server keeps no history"))
		return
	case err != nil:
		s.log.Error("chat: reading a conversation failed", "session", m.id, "err", err)
		m.write(appendJSONError(nil, codeNoHistory, "history is unavailable right now"))
		return
	}
	reason := "before"
	if q.hasAfter {
		reason = "after"
	}
	m.write(appendJSONDirectHistory(nil, s.sideName(peer), peer.account, reason, views, page.complete, page.more))
}

// guestDirectReason is the 401 a guest gets from GET /api/direct.
const guestDirectReason = "direct messages of guests are only on their connection"

// serveDirect answers GET /api/direct (the caller's conversations) and
// GET /api/direct?with=NICK|with_id=ID[&before=ID|&after=ID][&limit=N]
// (one of them), for the account the credentials name, as /api/session
// authenticates them; docs/protocol.md.
func (s *Server) serveDirect(w http.ResponseWriter, r *http.Request) {
	if !apiGET(w, r) {
		return
	}
	id, ok := s.identifyAPI(w, r, "")
	if !ok {
		return
	}
	if id.guest() {
		authChallenge(w, &AuthError{Status: http.StatusUnauthorized})
		jsonError(w, http.StatusUnauthorized, guestDirectReason)
		return
	}
	if s.history == nil {
		jsonError(w, http.StatusNotFound, "no history: the server runs without a store")
		return
	}
	me := dmSide{account: id.account}
	q := r.URL.Query()
	if !q.Has("with") && !q.Has("with_id") {
		list, err := s.conversationsOf(me, false)
		if err != nil {
			s.log.Error("chat: /api/direct: listing conversations failed", "account", id.account, "err", err)
			jsonError(w, http.StatusInternalServerError, "listing conversations failed")
			return
		}
		b := appendJSONConversationList([]byte("{"), list)
		writeRawJSON(w, append(b, "}\n"...))
		return
	}
	var peer dmSide
	switch {
	case q.Has("with") && q.Has("with_id"):
		jsonError(w, http.StatusBadRequest, "give with or with_id, not both")
		return
	case q.Has("with_id"):
		if q.Get("with_id") == "" {
			jsonError(w, http.StatusBadRequest, "with_id must be an account id")
			return
		}
		peer.account = q.Get("with_id")
	default:
		name := q.Get("with")
		acc := ""
		if given, err := checkName(name, s.cfg.MaxNameLength); err == nil {
			acc, _ = s.accountNamed(given)
		}
		if acc == "" {
			jsonError(w, http.StatusNotFound, "no such user: "+strconv.Quote(name)+" (with= names an account)")
			return
		}
		peer.account = acc
	}
	req, ok := parsePageQuery(w, r)
	if !ok {
		return
	}
	page, views, err := s.directPage(me, peer, req)
	if err != nil {
		s.log.Error("chat: /api/direct failed", "account", id.account, "err", err)
		jsonError(w, http.StatusInternalServerError, "reading the conversation failed")
		return
	}
	b := []byte(`{"with":`)
	b = appendJSONString(b, s.sideName(peer))
	b = append(b, `,"with_id":`...)
	b = appendJSONString(b, peer.account)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, page.complete)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, page.more)
	b = appendJSONDirectMessages(b, views)
	writeRawJSON(w, append(b, "}\n"...))
}

// writeRawJSON writes an encoded JSON answer with status 200, not cached.
func writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
