package chat

import (
	"errors"
	"net/url"
	"strings"
	"time"
)

// This file holds the direct-message seam (issue 14): how a conversation
// between two accounts is named in History, the optional History interface
// that lists an account's conversations, and the part of Host that sends
// direct messages. The chat server delivers and guards them (direct.go);
// package store keeps the conversations of accounts like rooms.

// conversationPrefix starts every conversation key. Room names never
// contain '@' or ':' (ValidRoomName), so a key can never name a room, nor a
// room a conversation: no room path (join, replay, /api/history, GET
// /api/rooms, chat.history) can reach a conversation.
const conversationPrefix = "@dm:"

// ConversationKey is the History key of the direct conversation between
// accounts a and b: Message.Room of its messages. It is the same whichever
// of the two is given first: "@dm:" and the two ids, sorted, each escaped
// as a URL query value (so that ':' inside an id is "%3A") and joined by
// ':'. An account's conversation with itself has a == b.
func ConversationKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return conversationPrefix + url.QueryEscape(a) + ":" + url.QueryEscape(b)
}

// ParseConversationKey returns the two account ids of a ConversationKey
// (sorted); ok is false when key is not one.
func ParseConversationKey(key string) (a, b string, ok bool) {
	rest, found := strings.CutPrefix(key, conversationPrefix)
	if !found {
		return "", "", false
	}
	ea, eb, found := strings.Cut(rest, ":")
	if !found || ea == "" || eb == "" || strings.Contains(eb, ":") {
		return "", "", false
	}
	var err1, err2 error
	a, err1 = url.QueryUnescape(ea)
	b, err2 = url.QueryUnescape(eb)
	if err1 != nil || err2 != nil || a == "" || b == "" || ConversationKey(a, b) != key {
		return "", "", false
	}
	return a, b, true
}

// IsConversation reports whether a History key names a direct
// conversation rather than a room.
func IsConversation(key string) bool {
	return strings.HasPrefix(key, conversationPrefix)
}

// ConversationStat describes one stored conversation of an account, as
// GET /api/direct lists it.
type ConversationStat struct {
	// Key is the conversation's ConversationKey; Peer the other account's
	// id (the account itself for its conversation with itself).
	Key, Peer string
	// Count is the number of messages stored; LastID the newest id ever
	// assigned (0 = none), LastTime when the newest stored one was sent.
	Count    int
	LastID   uint64
	LastTime time.Time
}

// ConversationLister is an optional interface of a History: one that
// implements it can list the conversations an account takes part in,
// which GET /api/direct and the moonchat.v1 "conversations" request need.
// Without it only the conversations of the process's life are listed.
type ConversationLister interface {
	// Conversations lists account's stored conversations, newest
	// (LastID's message) first.
	Conversations(account string) ([]ConversationStat, error)
}

// ErrNoSuchRecipient is returned by Directer.Direct when nobody answers to
// the name: no account owns it and no connected guest uses it.
var ErrNoSuchRecipient = errors.New("no such user")

// ErrNotDelivered is returned (or sent to the sender) when the recipient
// does not accept the sender's direct messages (it ignores them). The
// text is deliberately the same whatever the reason.
var ErrNotDelivered = errors.New("message not delivered")

// Directer is the part of Host that sends direct messages (issue 14;
// *Server implements it).
type Directer interface {
	// Direct sends text from sessionID's user to the user called to: an
	// account owning the name (connected or not), else a connected guest
	// using it (in the sender's room first). It checks what it can at
	// once — the sender, the recipient (ErrNoSuchRecipient), the text
	// (ErrInvalidText) — and queues the message in the sender's room: the
	// message hooks run with Message.To set, it is stored, then delivered
	// to every connection of both users. What fails later (a hook drops
	// it, the store fails, the recipient ignores the sender) is told to
	// the sender as an error event, as for a room message.
	Direct(sessionID uint64, to, text string) error
}
