package chatclient

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Event is one moonchat.v1 server event (docs/protocol.md, "Server →
// client"), the union of the fields of every type. A "roles" event's
// account id (its "id") is in UserID. Direct messages
// (type "direct", and "history" pages with With set) use With, WithID,
// From and To; their User is From.
type Event struct {
	Type     string   `json:"type"`
	ID       uint64   `json:"id"`
	Room     string   `json:"room"`
	User     string   `json:"user"`
	Text     string   `json:"text"`
	TS       string   `json:"ts"`
	Action   bool     `json:"action"`
	UserID   string   `json:"user_id"`
	Roles    []string `json:"roles"`
	Code     string   `json:"code"`
	Reason   string   `json:"reason"`
	Complete bool     `json:"complete"`
	More     bool     `json:"more"`
	Messages []Event  `json:"messages"`

	// presence
	Users    []string           `json:"users"`
	Joined   []string           `json:"joined"`
	Left     []string           `json:"left"`
	Accounts map[string]Account `json:"accounts"`
	// Guests are the guests whose session a script granted roles (no ID).
	Guests map[string]Account `json:"guests"`

	// rename, roles, typing
	Old  string `json:"old"`
	New  string `json:"new"`
	Name string `json:"name"`

	// topic
	Topic string `json:"topic"`
	By    string `json:"by"`
	Since string `json:"since"`

	// gap
	After uint64 `json:"after"`
	First uint64 `json:"first"`

	// direct messages
	With          string         `json:"with"`
	WithID        string         `json:"with_id"`
	From          string         `json:"from"`
	To            string         `json:"to"`
	Conversations []Conversation `json:"conversations"`
}

// Account is what presence events say about a member with an account
// (or, in Guests, about a guest granted roles: no ID).
type Account struct {
	ID    string   `json:"id"`
	Roles []string `json:"roles"`
}

// Conversation is one entry of a "conversations" answer: a direct
// conversation of this user with With.
type Conversation struct {
	With   string `json:"with"`
	WithID string `json:"with_id"`
	LastID uint64 `json:"last_id"`
	LastTS string `json:"last_ts"`
	Count  int    `json:"count"`
}

// Time is the event's time (ts), or the zero time when it has none or
// it does not parse.
func (e *Event) Time() time.Time {
	t, err := time.Parse(time.RFC3339Nano, e.TS)
	if err != nil {
		return time.Time{}
	}
	return t
}

// IsDirect reports whether e is a direct message (a "direct" event, or
// a message of a conversation's history page, which carries "with").
func (e *Event) IsDirect() bool { return e.Type == "direct" || e.With != "" }

// Line returns s fit for one terminal line, by the rules the server's
// plain-text format follows (docs/protocol.md, "Plain text"): a line
// break becomes " ⏎ ", a tab a space, any other control character (C0,
// DEL, C1) and invalid UTF-8 U+FFFD, and bidi controls are left out. A
// chat text comes from other people: without this an escape sequence in
// it would drive the reader's terminal, and a line break could draw a
// fake line under someone else's name.
func Line(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteRune(utf8.RuneError)
		case r == '\r' && strings.HasPrefix(s[i+n:], "\n"):
			b.WriteString(" ⏎ ")
			n++
		case r == '\n' || r == '\r' || r == '\v' || r == '\f' || r == '\u0085' || r == '\u2028' || r == '\u2029':
			b.WriteString(" ⏎ ")
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			b.WriteRune(utf8.RuneError)
		case unicode.Is(unicode.Bidi_Control, r):
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
