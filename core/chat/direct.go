package chat

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Direct messages (issue 14; docs/protocol.md, "Direct messages"): one
// user to another by name, on every connection of both. The contract:
//
//   - the sender's room orders them (opDirect): there the sender's mute
//     in every room (a mute with room "") refuses it, a recipient who
//     ignores the sender does not get it ("not delivered", the same text
//     whatever the reason), and the message hooks run with Message.To set
//     and fail closed as for a room message (post.go's messageHook);
//   - per conversation, Append and the hand-off to every connection of
//     both users happen under the conversation's lock (directState.lock),
//     so each connection gets a conversation's messages in id order and
//     only once they are durable. The hand-off is an op in each target
//     connection's room (opDirectOut), written by that room's goroutine
//     after the broadcasts in flight, like Host.Send;
//   - a conversation between two accounts is stored by the History under
//     ConversationKey; one with a guest on either side is kept in memory
//     (the newest Config.APILimit messages) until the guest's connection
//     closes. Without a History, accounts' direct messages are delivered
//     (id 0) and not stored, as room messages are;
//   - a note to self (to one's own name) is allowed: it reaches every
//     connection of the sender, "with" its own name.

var _ Directer = (*Server)(nil)

// dmPeer is a resolved recipient: its side and the name it was addressed
// by (an account's owned name, a guest's current name).
type dmPeer struct {
	side dmSide
	name string
}

// dmOut is one direct message on its way to the connections of both
// users, encoded once per viewer side and wire format; [0] is what the
// sender's side sees, [1] the recipient's.
type dmOut struct {
	plain, json [2][]byte
}

// The results of moonchat_direct_messages_total.
const (
	dmSent = iota
	dmNoSuchUser
	dmNotDelivered
	dmMuted
	dmDropped
	dmStoreError
	dmUnavailable
	dmRelayFailed
	numDMResults
)

var dmResultNames = [numDMResults]string{"sent", "no_such_user", "not_delivered", "muted", "dropped", "store_error", "unavailable", "relay_failed"}

// Error codes of direct messages (docs/protocol.md).
const (
	codeNoSuchUser   = "no_such_user"
	codeNotDelivered = "not_delivered"
)

// initDirect registers moonchat_direct_messages_total (New calls it).
func (s *Server) initDirect() {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_direct_messages_total",
		Help: "Direct messages by result (sent: stored and handed to both users' connections, or in cluster mode published; no_such_user, not_delivered: the recipient ignores the sender, muted: muted in every room, dropped: by the message hooks or their failure, store_error, unavailable: cluster mode, the node lost its cluster connection; relay_failed: cluster mode, the node of the guest it was sent to did not answer).",
	}, []string{"result"})
	s.metrics.reg.MustRegister(vec)
	for i, name := range dmResultNames {
		s.dmMetrics[i] = counter{vec.WithLabelValues(name)}
	}
}

// Direct implements Directer: see there and the file comment.
func (s *Server) Direct(sessionID uint64, to, text string) error {
	m := s.session(sessionID)
	if m == nil {
		return s.noSession(sessionID)
	}
	switch {
	case text == "":
		return fmt.Errorf("%w: empty", ErrInvalidText)
	case len(text) > s.cfg.MaxTextBytes:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidText, s.cfg.MaxTextBytes)
	}
	if why := textProblem(text); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidText, why)
	}
	peer, err := s.resolveRecipient(m, to)
	if err != nil {
		s.dmMetrics[dmNoSuchUser].Add(1)
		return err
	}
	m.acquire() // released by the room once the message is done, as for OnMessage
	if !m.room.enqueue(op{kind: opDirect, m: m, text: text, at: nowUTC(), dm: &peer}) {
		m.inflight.Add(-1)
		return ErrServerClosed
	}
	return nil
}

// directRequest handles m's moonchat.v1 direct-message events
// (OnMessage): "direct" is sent, "conversations" and history "with" a
// user are queued to m's room, counted against MaxPending like room
// history requests.
func (s *Server) directRequest(m *member, ev *clientEvent) {
	if ev.Type == "direct" {
		s.directEvent(m, *ev.To, *ev.Text)
		return
	}
	o := op{kind: opConvList, m: m}
	if ev.Type == "history" {
		o = op{kind: opDirectPage, m: m, with: *ev.With, limit: ev.Limit}
		switch {
		case ev.After != nil:
			o.cursor, o.hasAfter = *ev.After, true
		case ev.Before != nil:
			o.cursor = *ev.Before
		}
	}
	m.acquire()
	if !m.room.enqueue(o) {
		m.inflight.Add(-1)
	}
}

// directEvent handles a moonchat.v1 {"type":"direct"} from m (OnMessage):
// the text rules and the flood limits of a chat message, then Direct.
func (s *Server) directEvent(m *member, to, text string) {
	if len(text) > s.cfg.MaxTextBytes {
		s.metrics.dropTooLong.Add(1)
		m.sendError(codeTooLong, "message too long: at most "+strconv.Itoa(s.cfg.MaxTextBytes)+" bytes")
		return
	}
	if text == "" {
		return // nothing to say, as for a message
	}
	if why := textProblem(text); why != "" {
		s.metrics.dropBadRequest.Add(1)
		m.sendError(codeBadRequest, "message not sent: "+why)
		return
	}
	if !s.allowFlood(m, s.floodNow(time.Now()), false) {
		s.metrics.dropFlood.Add(1)
		return
	}
	err := s.Direct(m.id, to, text)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoSuchRecipient):
		m.sendError(codeNoSuchUser, "message not sent: "+err.Error())
	case errors.Is(err, ErrServerClosed), errors.Is(err, ErrNoSuchUser):
		// The connection or the server is closing.
	default:
		m.sendError(codeBadRequest, "message not sent: "+err.Error())
	}
}

// resolveRecipient finds who to names, for from: an account owning (or
// using) the name, else a connected guest using it, in from's room first.
func (s *Server) resolveRecipient(from *member, to string) (dmPeer, error) {
	name, err := checkName(to, s.cfg.MaxNameLength)
	if err != nil {
		// No valid name: quoted, as it may hold anything.
		return dmPeer{}, fmt.Errorf("%w: %s", ErrNoSuchRecipient, strconv.Quote(to))
	}
	if acc, owned := s.accountNamed(name); acc != "" {
		return dmPeer{side: dmSide{account: acc}, name: owned}, nil
	}
	g, n := s.guestNamed(from.room, name)
	if n == 1 && g.room == from.room {
		return dmPeer{side: dmSide{guest: g}, name: g.currentName()}, nil
	}
	// Another node's guest (direct_relay.go), in the sender's room first.
	rm, inHome, rn := s.remoteGuestNamed(from.roomName, name)
	if inHome {
		return dmPeer{side: remoteGuestSide(rm), name: rm.e.Name}, nil
	}
	switch {
	case n == 1 && rn == 0:
		return dmPeer{side: dmSide{guest: g}, name: g.currentName()}, nil
	case n == 0 && rn == 1:
		return dmPeer{side: remoteGuestSide(rm), name: rm.e.Name}, nil
	case n+rn > 1:
		return dmPeer{}, fmt.Errorf("%w: %s (ambiguous: guests in several rooms use it)", ErrNoSuchRecipient, name)
	}
	return dmPeer{}, fmt.Errorf("%w: %s", ErrNoSuchRecipient, name)
}

// accountNamed returns the account that owns name (or a look-alike), else
// the connected account that uses it, and the name to call it by (the
// name it owns); "" when none.
func (s *Server) accountNamed(name string) (id, owned string) {
	a := &s.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := nameKeys(name)
	for _, k := range keys {
		if o, ok := a.owned[k]; ok {
			return o, a.owns[o]
		}
	}
	for _, k := range keys {
		if h := a.keys[k]; h != nil {
			if n := a.owns[h.id]; n != "" {
				return h.id, n
			}
			return h.id, name
		}
	}
	return "", ""
}

// guestNamed finds the connected guest called name: in home (the
// sender's room) when there is one, else in any room; n is how many
// guests it found (0, 1, or more when several rooms have one and home
// none).
func (s *Server) guestNamed(home *room, name string) (g *member, n int) {
	find := func(r *room) *member {
		r.roster.mu.Lock()
		defer r.roster.mu.Unlock()
		for _, k := range nameKeys(name) {
			if x := r.roster.names[k]; x != nil && x.account == "" && x.joined.Load() {
				return x
			}
		}
		return nil
	}
	if home != nil {
		if g := find(home); g != nil {
			return g, 1
		}
	}
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		if r != home {
			rooms = append(rooms, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rooms {
		if x := find(r); x != nil {
			g = x
			n++
		}
	}
	return g, n
}

// sideOf is m's side of a conversation.
func sideOf(m *member) dmSide {
	if m.account != "" {
		return dmSide{account: m.account}
	}
	return dmSide{guest: m}
}

// direct processes opDirect, m's direct message, in m's room: mute,
// ignore, hooks, then store and hand-off (deliverDirect). What stops it
// is told to m alone.
func (r *room) direct(o *op) {
	s := r.srv
	m, peer := o.m, o.dm
	r.release = append(r.release, m)
	if !m.joined.Load() {
		return // refused, or left before its message came up
	}
	if why := s.directMuteRefusal(m); why != "" {
		s.dmMetrics[dmMuted].Add(1)
		r.out.notice(m, m.appendError(nil, codeMuted, why))
		return
	}
	from := sideOf(m)
	if s.ignoresSender(peer.side, m) {
		s.dmMetrics[dmNotDelivered].Add(1)
		r.out.notice(m, m.appendError(nil, codeNotDelivered, ErrNotDelivered.Error()+" to "+peer.name))
		return
	}
	key := convKey(from, peer.side)
	msg := &Message{Room: key, User: m.currentName(), Text: o.text, Time: o.at, Account: m.msgAccount(), To: peer.name}
	if s.hooks != nil {
		if !r.messageHook(m, msg) {
			s.dmMetrics[dmDropped].Add(1)
			return
		}
		// A hook changes the text alone: the conversation and the
		// recipient are the server's.
		msg.Room, msg.To = key, peer.name
	}
	r.deliverDirect(m, from, peer, msg)
}

// directMuteRefusal returns the error text for a direct message of m
// refused by a mute in every room (counted), or "". A mute in one room
// does not stop direct messages.
func (s *Server) directMuteRefusal(m *member) string {
	ix := s.mod.idx.Load()
	if ix.n == 0 {
		return ""
	}
	sub := m.subject(m.currentName())
	if sub.name != "" && len(ix.names) > 0 {
		sub.keys = m.nameKeysOf(sub.name)
	}
	// No room is called conversationPrefix: only mutes of every room
	// (Room "") apply.
	rs := ix.find(KindMute, conversationPrefix, sub, s.cfg.Clock.Now())
	if rs == nil {
		return ""
	}
	s.metrics.mod.refusedMute.Add(1)
	return "message not sent: " + restrictionText(rs, "")
}

// ignoresSender reports whether the recipient side ignores m.
func (s *Server) ignoresSender(to dmSide, m *member) bool {
	var set *ignoreSet
	switch {
	case to.isRemote():
		return false // its node checks (ServeDirect)
	case to.guest != nil:
		set = to.guest.ign.Load()
	default:
		s.ign.mu.Lock()
		set = s.ign.byAccount[to.account]
		s.ign.mu.Unlock()
	}
	return !set.empty() && set.hides(m.account, m.id)
}

// deliverDirect stores msg and hands it to every connection of both
// users, under the conversation's lock: Append (or the in-memory store),
// then one opDirectOut per connection. Not stored means not delivered.
func (r *room) deliverDirect(m *member, from dmSide, peer *dmPeer, msg *Message) {
	s := r.srv
	if s.broker != nil && s.storedConv(from, peer.side) {
		r.publishDirect(m, msg)
		return
	}
	if peer.side.isRemote() {
		r.relayDirect(m, from, peer, msg) // direct_relay.go
		return
	}
	unlock := s.dm.lock(msg.Room)
	defer unlock()
	switch {
	case s.storedConv(from, peer.side):
		start := time.Now()
		err := s.history.Append(s.ctx, []*Message{msg})
		s.metrics.appendTime.observeSince(start)
		if err != nil {
			s.dmMetrics[dmStoreError].Add(1)
			s.metrics.appendErrors.Add(1)
			s.log.Error("chat: storing a direct message failed", "room", r.name, "session", m.id, "err", err)
			r.out.notice(m, m.appendError(nil, codeDropped, "message not sent: the server could not store it"))
			return
		}
		if _, ok := s.history.(ConversationLister); !ok {
			s.dm.track(from.account, peer.side.account, msg)
		}
	case from.guest != nil || peer.side.guest != nil:
		if s.pushUnavailable(from, peer.side) { // direct_relay.go
			r.out.notice(m, m.appendError(nil, codeUnavailable, unavailableText))
			return
		}
		if !s.dm.appendMem(from, peer.side, msg, s.cfg.APILimit) {
			s.dmMetrics[dmNoSuchUser].Add(1)
			r.out.notice(m, m.appendError(nil, codeNoSuchUser, "message not sent: "+peer.name+" has left"))
			return
		}
		// The account's connections on other nodes (direct_relay.go).
		s.pushToAccount(from, peer.side, msg, "")
	}
	// Without a History, two accounts' messages go out unstored (id 0).
	s.handOff(from, peer.side, peer.name, msg)
	s.dmMetrics[dmSent].Add(1)
}

// handOff encodes a stored direct message from from to peer (called
// peerName) once per viewer side and queues it to every connection of
// both users on this node (opDirectOut).
func (s *Server) handOff(from, peer dmSide, peerName string, msg *Message) {
	out := &dmOut{}
	for side := range 2 {
		d := dmView{msg: msg, from: msg.User, to: peerName}
		if side == 0 {
			d.with, d.withID = peerName, peer.account
		} else {
			d.with, d.withID = msg.User, from.account
		}
		out.json[side] = appendJSONDirect(nil, &d)
		out.plain[side] = appendPlainDirect(nil, &d, side == 0)
	}
	s.mu.Lock()
	senders := s.dm.conns(from, nil)
	var recipients []*member
	if !from.same(peer) {
		recipients = s.dm.conns(peer, nil)
	}
	s.mu.Unlock()
	for side, list := range [2][]*member{senders, recipients} {
		for _, c := range list {
			c.room.enqueue(op{kind: opDirectOut, m: c, dmOut: out, dmSide: side})
		}
	}
}

// publishDirect publishes a direct message between two accounts to the
// cluster's log (cluster mode): every node hands it to the connections of
// both accounts it has when it comes back (deliverConversation). A
// conversation with a guest stays on the guest's node (deliverDirect).
func (r *room) publishDirect(m *member, msg *Message) {
	s := r.srv
	if !s.broker.Connected() {
		s.dmMetrics[dmUnavailable].Add(1)
		s.metrics.dropUnavailable.Add(1)
		r.out.notice(m, m.appendError(nil, codeUnavailable, unavailableText))
		return
	}
	start := time.Now()
	err := s.broker.Publish(s.ctx, msg.Room, []*Message{msg})
	s.metrics.appendTime.observeSince(start)
	switch {
	case err == nil:
		s.dmMetrics[dmSent].Add(1)
	case msg.ID != 0:
		// Published all the same: it comes back like any other.
		s.dmMetrics[dmSent].Add(1)
		s.log.Warn("chat: publishing a direct message reported an error after it was stored", "session", m.id, "err", err)
	case !s.broker.Connected():
		s.dmMetrics[dmUnavailable].Add(1)
		s.metrics.dropUnavailable.Add(1)
		s.log.Warn("chat: publishing a direct message failed: the cluster connection is down", "session", m.id, "err", err)
		r.out.notice(m, m.appendError(nil, codeUnavailable, unavailableText))
	default:
		s.dmMetrics[dmStoreError].Add(1)
		s.metrics.appendErrors.Add(1)
		s.log.Error("chat: publishing a direct message failed", "room", r.name, "session", m.id, "err", err)
		r.out.notice(m, m.appendError(nil, codeDropped, "message not sent: the server could not store it"))
	}
}

// deliverConversation hands the messages of a conversation between two
// accounts, read back from the cluster's log (Deliver), to this node's
// connections of both accounts. The sender is the account of each
// message (Message.Account), the other side the conversation's other
// account, called by the name it owns here.
func (s *Server) deliverConversation(key string, msgs []Message) {
	a, b, ok := ParseConversationKey(key)
	if !ok {
		s.log.Warn("chat: a delivered conversation key is malformed; dropped", "key", key)
		return
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return
	}
	_, lister := s.history.(ConversationLister)
	for i := range msgs {
		msg := &msgs[i]
		if msg.Account == nil || (msg.Account.ID != a && msg.Account.ID != b) {
			s.log.Warn("chat: a delivered direct message names no account of its conversation; dropped", "key", key, "id", msg.ID)
			continue
		}
		from, peer := dmSide{account: a}, dmSide{account: b}
		if msg.Account.ID == b {
			from, peer = peer, from
		}
		if !lister {
			s.dm.track(from.account, peer.account, msg)
		}
		s.handOff(from, peer, s.ownedName(peer.account), msg)
	}
}

// directOut writes one delivered direct message to o.m (opDirectOut, in
// o.m's room, after the broadcasts in flight).
func (r *room) directOut(o *op) {
	m := o.m
	if !m.joined.Load() {
		return
	}
	r.flushAndWait()
	if m.format == formatJSON {
		m.write(o.dmOut.json[o.dmSide])
	} else {
		m.write(o.dmOut.plain[o.dmSide])
	}
}
