package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is the moonchat.v1 half of the wire contract (docs/protocol.md,
// "JSON"): the encoders of server events, appending to a caller's buffer
// like the plain-text ones in wire.go, and the decoder of client events.

// appendJSONMessageFields appends the fields of a message object, without
// braces or type, so the same code serves "message" events and the entries
// of "history" events.
func appendJSONMessageFields(b []byte, m *Message) []byte {
	b = append(b, `"id":`...)
	b = strconv.AppendUint(b, m.ID, 10)
	b = append(b, `,"room":`...)
	b = appendJSONString(b, m.Room)
	b = append(b, `,"user":`...)
	b = appendJSONString(b, m.User)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, m.Text)
	b = append(b, `,"ts":"`...)
	b = m.Time.UTC().AppendFormat(b, tsLayout)
	b = append(b, '"')
	if m.Action {
		b = append(b, `,"action":true`...)
	}
	if a := m.Account; a != nil {
		// An account's messages, live or from history (a store keeps
		// the account with each message), and those of a guest whose
		// session was granted roles: roles without user_id.
		if a.ID != "" {
			b = append(b, `,"user_id":`...)
			b = appendJSONString(b, a.ID)
		}
		b = appendJSONRoles(b, a.Roles)
	}
	return b
}

// appendJSONMessage appends a "message" event.
func appendJSONMessage(b []byte, m *Message) []byte {
	b = append(b, `{"type":"message",`...)
	b = appendJSONMessageFields(b, m)
	return append(b, '}')
}

// appendJSONSystem appends a "system" event.
func appendJSONSystem(b []byte, room, text string, t time.Time) []byte {
	b = append(b, `{"type":"system","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, text)
	b = append(b, `,"ts":"`...)
	b = t.UTC().AppendFormat(b, tsLayout)
	return append(b, `"}`...)
}

// appendJSONError appends an "error" event.
func appendJSONError(b []byte, code, text string) []byte {
	b = append(b, `{"type":"error","code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, text)
	return append(b, '}')
}

// appendJSONWelcome appends a "welcome" event.
func appendJSONWelcome(b []byte, room, user string) []byte {
	b = append(b, `{"type":"welcome","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"user":`...)
	b = appendJSONString(b, user)
	return append(b, '}')
}

// appendJSONPresence appends a "presence" event.
func appendJSONPresence(b []byte, room string, users []string) []byte {
	b = append(b, `{"type":"presence","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"users":[`...)
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, u)
	}
	return append(b, "]}"...)
}

// appendJSONPresenceDelta appends a "presence" event that changes the
// list: "left" (removed first), then "joined" (added, in join order).
// An empty list is left out.
func appendJSONPresenceDelta(b []byte, room string, joined, left []string) []byte {
	b = append(b, `{"type":"presence","room":`...)
	b = appendJSONString(b, room)
	for _, f := range [...]struct {
		key   string
		names []string
	}{{`,"joined":[`, joined}, {`,"left":[`, left}} {
		if len(f.names) == 0 {
			continue
		}
		b = append(b, f.key...)
		for i, u := range f.names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, u)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONRename appends a "rename" event.
func appendJSONRename(b []byte, room, old, new string) []byte {
	b = append(b, `{"type":"rename","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"old":`...)
	b = appendJSONString(b, old)
	b = append(b, `,"new":`...)
	b = appendJSONString(b, new)
	return append(b, '}')
}

// appendJSONRolesEvent appends a "roles" event: the member known as name
// (account id, "" for a guest) now has roles.
func appendJSONRolesEvent(b []byte, room, name, id string, roles []string) []byte {
	b = append(b, `{"type":"roles","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, name)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, id)
	}
	b = appendJSONRoles(b, roles)
	return append(b, '}')
}

// appendJSONToken appends the answer to an accepted token refresh:
// {"type":"token","expires":UNIX}, without expires when the new
// credentials do not expire.
func appendJSONToken(b []byte, expires time.Time) []byte {
	b = append(b, `{"type":"token"`...)
	if !expires.IsZero() {
		b = append(b, `,"expires":`...)
		b = strconv.AppendInt(b, expires.Unix(), 10)
	}
	return append(b, '}')
}

// appendJSONRedact appends a "redact" event.
func appendJSONRedact(b []byte, room string, id uint64) []byte {
	b = append(b, `{"type":"redact","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, '}')
}

// appendJSONGap appends a "gap" event.
func appendJSONGap(b []byte, room string, after, first uint64) []byte {
	b = append(b, `{"type":"gap","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"after":`...)
	b = strconv.AppendUint(b, after, 10)
	b = append(b, `,"first":`...)
	b = strconv.AppendUint(b, first, 10)
	return append(b, '}')
}

// appendJSONHistory appends a "history" event.
func appendJSONHistory(b []byte, room, reason string, msgs []Message, complete, more bool) []byte {
	b = append(b, `{"type":"history","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, reason)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, complete)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, more)
	b = appendJSONMessages(b, msgs)
	return append(b, '}')
}

// appendJSONMessages appends `,"messages":[...]`: msgs as message objects
// without type, the form shared by the "history" event and /api/history.
func appendJSONMessages(b []byte, msgs []Message) []byte {
	b = append(b, `,"messages":[`...)
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendJSONMessageFields(b, &msgs[i])
		b = append(b, '}')
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Like encoding/json it
// escapes <, > and & (so a page can embed events in HTML safely) and
// U+2028/U+2029 (line terminators to JavaScript), and replaces invalid
// UTF-8 with U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// clientEvent is a decoded JSON event from a client. Before and After are
// pointers because "after":0 (from the very first message) differs from no
// after at all, and giving both is an error.
type clientEvent struct {
	Type   string  `json:"type"`
	Text   *string `json:"text"`
	Before *uint64 `json:"before"`
	After  *uint64 `json:"after"`
	Limit  int     `json:"limit"`
	// Token is the new credentials of a "token" event (expiry.go).
	Token *string `json:"token"`
	// ID is the message a "delete" event deletes (delete.go).
	ID *uint64 `json:"id"`
	// To is the recipient of a "direct" event, With the other user of
	// a conversation a "history" event pages (direct.go).
	To   *string `json:"to"`
	With *string `json:"with"`
}

// badFrame is the start of every answer to a malformed moonchat.v1
// frame; the texts are written for the author of a client.
const badFrame = "malformed moonchat.v1 frame: "

// frameError is a decodeClientEvent error: a text for the client author,
// pointing at the protocol's description.
func frameError(format string, args ...any) error {
	return fmt.Errorf(badFrame+format+" (see docs/protocol.md)", args...)
}

// fieldKinds says in words what each field of a client event must be.
var fieldKinds = map[string]string{
	"type":   "a string",
	"text":   "a string",
	"before": "a message id (a whole number, 0 or more)",
	"after":  "a message id (a whole number, 0 or more)",
	"limit":  "a whole number",
	"token":  "a string",
	"id":     "a message id (a whole number, 1 or more)",
	"to":     "a string (the recipient's name)",
	"with":   "a string (the other user's name)",
}

// decodeClientEvent parses one JSON client frame. Only "message" (with a
// text), "history" (with at most one of before and after, and a "with"
// for a conversation), "presence", "typing", "token" (with a token),
// "delete" (with an id), "direct" (with to and text) and "conversations"
// are valid. Errors name what is wrong in terms of the protocol (the field
// and what it should be), not the decoder's internals.
func decodeClientEvent(data []byte) (clientEvent, error) {
	var ev clientEvent
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return ev, frameError("not a JSON object")
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return ev, frameError("not valid JSON (error at byte %d)", syn.Offset)
		case errors.As(err, &typ) && fieldKinds[typ.Field] != "":
			return ev, frameError("%q must be %s", typ.Field, fieldKinds[typ.Field])
		}
		return ev, frameError("not a valid client event")
	}
	switch ev.Type {
	case "message":
		if ev.Text == nil {
			return ev, frameError(`a "message" event needs a "text" string`)
		}
	case "history":
		if ev.Limit < 0 {
			return ev, frameError(`"limit" must not be negative`)
		}
		if ev.Before != nil && ev.After != nil {
			return ev, frameError(`give "before" or "after", not both`)
		}
		if ev.With != nil && *ev.With == "" {
			return ev, frameError(`"with" must name the other user of a conversation`)
		}
	case "direct":
		if ev.To == nil || *ev.To == "" || ev.Text == nil {
			return ev, frameError(`a "direct" event needs a "to" string (the recipient's name) and a "text" string`)
		}
	case "presence", "typing", "conversations":
	case "token":
		if ev.Token == nil || *ev.Token == "" {
			return ev, frameError(`a "token" event needs a "token" string`)
		}
	case "delete":
		if ev.ID == nil || *ev.ID == 0 {
			return ev, frameError(`a "delete" event needs an "id": the message's id, 1 or more`)
		}
	case "":
		return ev, frameError(`no "type" field`)
	default:
		return ev, frameError(`unknown type %q (want "message", "history", "presence", "typing", "token", "delete", "direct" or "conversations")`, ev.Type)
	}
	return ev, nil
}
