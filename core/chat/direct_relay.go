package chat

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Guests' direct messages across the nodes of a cluster (issue 15;
// docs/cluster.md, "Direct messages"). A conversation with a guest is
// never stored durably: it lives in the memory of the guest's node for
// the guest's session. When the two users are on different nodes, the
// nodes relay it to each other on core NATS (DirectRelay, package
// cluster's Presence), so:
//
//   - each guest's node holds that guest's conversations. A message to
//     another node's guest (found in the cluster's roster: its node and
//     session) runs through the sender's room as any direct message
//     (mute, hooks), then is relayed to the guest's node, which checks
//     the guest's ignore list, keeps it in the guest's conversation,
//     numbers it there and hands it to the guest; its answer (the id, or
//     the refusal no_such_user or not_delivered) comes back and the
//     sender's node echoes it to the sender's connections. A guest
//     sender's node keeps its own copy for its guest (numbered there:
//     the ids of one message differ between two guests of different
//     nodes, each in its own node's order);
//   - an account's side of a conversation with a guest is not kept on
//     the account's nodes: the guest's node keeps it, and sends each
//     message to every other node where the account has members
//     (RelayedDirect.Deliver), so that every connection of the account
//     gets it live, under the conversation's lock, in id order;
//   - fail closed: a relay refused because NATS is unreachable (or the
//     node's log, Broker.Connected, is) is the error "unavailable"
//     (ErrUnavailable), and so is a message between this node's guest and
//     an account with members on other nodes while the log is
//     unreachable (pushUnavailable); a node that does not answer
//     "relay_failed" (logged, counted); nothing is kept then on the
//     sender's side. A delivery to an account's other node that fails is
//     logged and counted in moonchat_presence_errors_total: the message
//     is kept and its users got it on the nodes that answered.
//
// The sender's room goroutine waits for the relay's answer (bounded by
// presenceTimeout), as it waits for name claims: a sender's direct
// messages keep their order. No lock is held while a node waits for
// another node, and a node serving a relay asks only deliveries of the
// others, which never ask anything: two nodes never wait for each other.

// DirectRelay is an optional interface of a Presence (Config.Presence):
// one that implements it (*cluster.Presence) carries direct messages to
// and from guests connected to other nodes. Without it a guest exchanges
// direct messages with the users of its own node only.
type DirectRelay interface {
	// RelayDirect hands d to node (its Server.ServeDirect) and returns
	// its answer. It fails wrapping ErrUnavailable when the cluster
	// cannot be reached (nothing was sent), with another error when node
	// did not answer (it may or may not have served it).
	RelayDirect(ctx context.Context, node string, d RelayedDirect) (RelayAnswer, error)
}

// RelayedDirect is a direct message one node hands another.
type RelayedDirect struct {
	// Deliver is set for a message the sending node already kept (its
	// guest's conversation with an account): the receiving node only
	// hands it to its connections of the account (ToAccount, or
	// FromAccount for the account's own echo), with ID. Unset, the
	// receiving node keeps it in its guest ToSession's conversation.
	Deliver bool   `json:"deliver,omitempty"`
	ID      uint64 `json:"id,omitempty"`
	// The sender: its node and session there, name, account ("" for a
	// guest) and roles.
	FromNode    string   `json:"from_node"`
	FromSession uint64   `json:"from_session"`
	FromName    string   `json:"from"`
	FromAccount string   `json:"from_account,omitempty"`
	FromRoles   []string `json:"from_roles,omitempty"`
	// The recipient: a guest (ToNode, ToSession) or an account
	// (ToAccount), called ToName.
	ToNode    string    `json:"to_node,omitempty"`
	ToSession uint64    `json:"to_session,omitempty"`
	ToAccount string    `json:"to_account,omitempty"`
	ToName    string    `json:"to"`
	Text      string    `json:"text"`
	Time      time.Time `json:"ts"`
}

// RelayAnswer is a node's answer to a RelayedDirect.
type RelayAnswer struct {
	// ID is the message's id in the guest's conversation on the answering
	// node (0 for a delivery).
	ID uint64 `json:"id,omitempty"`
	// Refused is "" when the message was kept and handed out, else the
	// error code of the refusal: "no_such_user" (the guest has left) or
	// "not_delivered" (the guest ignores the sender).
	Refused string `json:"refused,omitempty"`
}

// ServeDirect serves a direct message another node relays to this one
// (cmd/moonchat hands it to the DirectRelay's serving side): a delivery
// to this node's connections of an account, or a message to this node's
// guest d.ToSession, kept in its conversation and handed to it (and to
// this node's connections of the sender's account). It never waits for
// a room, and asks other nodes only deliveries. The sender's node counts
// the message in moonchat_direct_messages_total, this one does not.
func (s *Server) ServeDirect(d RelayedDirect) RelayAnswer {
	from := dmSide{account: d.FromAccount}
	if from.account == "" {
		from = dmSide{remote: remoteKey{d.FromNode, d.FromSession}, rname: d.FromName}
	}
	msg := &Message{User: d.FromName, Text: d.Text, Time: d.Time, To: d.ToName, ID: d.ID}
	if d.FromAccount != "" || len(d.FromRoles) > 0 {
		msg.Account = &Account{ID: d.FromAccount, Roles: slices.Clone(d.FromRoles)}
	}
	if d.Deliver {
		to := dmSide{account: d.ToAccount}
		if to.account == "" {
			to = dmSide{remote: remoteKey{d.ToNode, d.ToSession}, rname: d.ToName}
		}
		msg.Room = convKey(from, to)
		s.handOff(from, to, d.ToName, msg)
		return RelayAnswer{}
	}
	g := s.session(d.ToSession)
	if g == nil || g.account != "" || !g.joined.Load() {
		return RelayAnswer{Refused: codeNoSuchUser}
	}
	if set := g.ign.Load(); !set.empty() && d.FromAccount != "" && set.hides(d.FromAccount, 0) {
		return RelayAnswer{Refused: codeNotDelivered}
	}
	peer := dmSide{guest: g}
	msg.To = g.currentName()
	msg.Room = convKey(from, peer)
	unlock := s.dm.lock(msg.Room)
	defer unlock()
	if !s.dm.appendMem(from, peer, msg, s.cfg.APILimit) {
		return RelayAnswer{Refused: codeNoSuchUser}
	}
	s.handOff(from, peer, msg.To, msg)
	s.pushToAccount(from, peer, msg, d.FromNode)
	return RelayAnswer{ID: msg.ID}
}

// relayDirect sends m's direct message msg to another node's guest
// (peer.side is remote) and tells m the outcome as deliverDirect does
// for a local one. On m's room goroutine, which waits for the answer.
func (r *room) relayDirect(m *member, from dmSide, peer *dmPeer, msg *Message) {
	s := r.srv
	d := RelayedDirect{
		FromNode: s.presence.Node(), FromSession: m.id, FromName: msg.User, FromAccount: m.account,
		ToNode: peer.side.remote.node, ToSession: peer.side.remote.session, ToName: peer.name,
		Text: msg.Text, Time: msg.Time,
	}
	if a := msg.Account; a != nil {
		d.FromRoles = a.Roles
	}
	var ans RelayAnswer
	err := ErrUnavailable // refused at once while the log is unreachable, as other direct messages
	if s.broker == nil || s.broker.Connected() {
		ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
		ans, err = s.relay.RelayDirect(ctx, d.ToNode, d)
		cancel()
	}
	switch {
	case errors.Is(err, ErrUnavailable):
		s.dmMetrics[dmUnavailable].Add(1)
		s.metrics.dropUnavailable.Add(1)
		s.log.Warn("chat: relaying a direct message failed: the cluster connection is down", "session", m.id, "node", d.ToNode, "err", err)
		r.out.notice(m, m.appendError(nil, codeUnavailable, unavailableText))
		return
	case err != nil:
		s.dmMetrics[dmRelayFailed].Add(1)
		s.log.Warn("chat: relaying a direct message failed: the recipient's node did not answer", "session", m.id, "node", d.ToNode, "err", err)
		r.out.notice(m, m.appendError(nil, codeUnavailable, "message not sent: "+peer.name+"'s server did not answer; try again shortly"))
		return
	case ans.Refused == codeNoSuchUser:
		s.dmMetrics[dmNoSuchUser].Add(1)
		r.out.notice(m, m.appendError(nil, codeNoSuchUser, "message not sent: "+peer.name+" has left"))
		return
	case ans.Refused == codeNotDelivered:
		s.dmMetrics[dmNotDelivered].Add(1)
		r.out.notice(m, m.appendError(nil, codeNotDelivered, ErrNotDelivered.Error()+" to "+peer.name))
		return
	case ans.Refused != "":
		s.dmMetrics[dmRelayFailed].Add(1)
		s.log.Warn("chat: a relayed direct message was refused with an unknown code", "session", m.id, "node", d.ToNode, "code", ans.Refused)
		r.out.notice(m, m.appendError(nil, codeDropped, "message not sent: "+peer.name+"'s server refused it"))
		return
	}
	s.dmMetrics[dmSent].Add(1)
	unlock := s.dm.lock(msg.Room)
	defer unlock()
	if from.guest != nil {
		// This node's copy of its guest's conversation, numbered here.
		if !s.dm.appendMem(from, peer.side, msg, s.cfg.APILimit) {
			return // the sender left meanwhile: nobody to echo to
		}
	} else {
		// An account's conversation with a guest is the guest's node's,
		// which sent it to the account's other nodes.
		msg.ID = ans.ID
	}
	s.handOff(from, peer.side, peer.name, msg)
}

// pushToAccount sends msg, kept here in the conversation of a guest of
// this node and an account (either side may be the account), to every
// other node where the account has members but skip (the node that
// relayed it), for their connections of the account. Called under the
// conversation's lock, so that the account's connections get the
// conversation in id order. Without a DirectRelay, or with no account
// side, it does nothing.
func (s *Server) pushToAccount(from, to dmSide, msg *Message, skip string) {
	acct := to.account
	if from.account != "" {
		acct = from.account
	}
	if s.relay == nil || acct == "" || from.same(to) {
		return
	}
	nodes := s.accountNodes(acct)
	if len(nodes) == 0 {
		return
	}
	d := RelayedDirect{
		Deliver: true, ID: msg.ID, FromNode: s.presence.Node(), FromName: msg.User, FromAccount: from.account,
		ToAccount: to.account, ToName: msg.To, Text: msg.Text, Time: msg.Time,
	}
	if a := msg.Account; a != nil {
		d.FromRoles = a.Roles
	}
	// The guest's side as the other nodes name it.
	switch {
	case from.guest != nil:
		d.FromSession = from.guest.id
	case from.isRemote():
		d.FromNode, d.FromSession = from.remote.node, from.remote.session
	}
	if to.guest != nil {
		d.ToNode, d.ToSession = s.presence.Node(), to.guest.id
	}
	for _, node := range nodes {
		if node == skip {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
		_, err := s.relay.RelayDirect(ctx, node, d)
		cancel()
		if err != nil {
			s.presenceFailed("delivery of a direct message to node "+node, msg.Room, err)
		}
	}
}

// pushUnavailable reports whether a message between this node's guest
// and an account (from, to) must be refused with "unavailable": the
// account has members on other nodes, and this node cannot reach the
// cluster (Broker.Connected), so they would not get it. Counted.
func (s *Server) pushUnavailable(from, to dmSide) bool {
	if s.relay == nil || s.broker == nil || s.broker.Connected() {
		return false
	}
	acct := to.account
	if from.account != "" {
		acct = from.account
	}
	if acct == "" || from.same(to) || len(s.accountNodes(acct)) == 0 {
		return false
	}
	s.dmMetrics[dmUnavailable].Add(1)
	s.metrics.dropUnavailable.Add(1)
	return true
}

// accountNodes returns the other nodes where account has members, from
// the cluster's roster, sorted.
func (s *Server) accountNodes(account string) []string {
	if s.presence == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var nodes []string
	for _, members := range s.remote().rooms {
		for _, rm := range members {
			if rm.e.Account == account && !slices.Contains(nodes, rm.key.node) {
				nodes = append(nodes, rm.key.node)
			}
		}
	}
	slices.Sort(nodes)
	return nodes
}

// remoteGuestNamed finds another node's guest called name (a look-alike
// counts, as for this node's guests) in the cluster's roster: in room
// home when there is one there (inHome), else in any room; n is how many
// it found. Only with a DirectRelay: without it they cannot be reached.
// It scans the roster's guests: a direct message to a name no account
// owns is rare next to the room traffic.
func (s *Server) remoteGuestNamed(home, name string) (rm *remoteMember, inHome bool, n int) {
	if s.relay == nil {
		return nil, false, 0
	}
	keys := nameKeys(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	for room, members := range s.remote().rooms {
		for _, x := range members {
			if x.e.Account != "" || !sharesKey(x.keys, keys) {
				continue
			}
			if room == home {
				return x, true, 1
			}
			rm = x
			n++
		}
	}
	return rm, false, n
}

// remoteName is the current name of another node's guest k, or old when
// it is no longer in the roster.
func (s *Server) remoteName(k remoteKey, old string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, members := range s.remote().rooms {
		if rm := members[k]; rm != nil {
			return rm.e.Name
		}
	}
	return old
}

// remoteGuestSide is the dmSide of another node's guest rm.
func remoteGuestSide(rm *remoteMember) dmSide {
	return dmSide{remote: rm.key, rname: rm.e.Name}
}
