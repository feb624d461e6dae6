package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file is the wire contract of docs/protocol.md in code: how events are
// encoded for the two formats and how JSON client events are decoded. The
// encoders append to a caller's buffer so a room can encode a whole batch
// into one reused arena.

// format is a connection's wire format, chosen by the subprotocol.
type format uint8

const (
	formatPlain format = iota
	formatJSON
)

// Error codes of the JSON "error" event (docs/protocol.md).
const (
	codeBadRequest = "bad_request"
	codeBinary     = "binary"
	codeTooLong    = "too_long"
	codeFlood      = "flood"
	codeDropped    = "dropped"
	codeRefused    = "refused"
	codeNoHistory  = "no_history"
	// codeUnknownCommand is only ever set by hooks (MessageResult.Code).
	codeUnknownCommand = "unknown_command"
)

// dropCode returns the error code for a message a hook dropped: the hook's
// code when the protocol lists it, else "dropped", so that clients only
// ever see documented codes.
func dropCode(code string) string {
	switch code {
	case codeBadRequest, codeBinary, codeTooLong, codeFlood, codeDropped,
		codeRefused, codeNoHistory, codeUnknownCommand:
		return code
	}
	return codeDropped
}

// tsLayout is RFC 3339 with milliseconds; times are always UTC.
const tsLayout = "2006-01-02T15:04:05.000Z"

// Plain text is one line per frame (docs/protocol.md, "Plain text"): a
// terminal client prints each frame as it comes, so whatever a user or a
// script wrote must stay on the line that starts with its author's name,
// or a message could draw a fake "* alice is now known as admin" line
// beneath its own. Every plain-text frame is therefore written through
// appendPlainText. moonchat.v1 keeps texts as they are: JSON strings
// escape line breaks, so a multi-line text there is unambiguous.

// plainLineBreak stands for a line break inside a plain-text frame: the
// return symbol U+23CE, spaced so that it reads as a separator.
const plainLineBreak = " ⏎ "

// appendPlainText appends text made safe for a plain-text frame:
//   - a line break (LF, CR, CR LF, VT, FF, NEL U+0085, U+2028, U+2029)
//     becomes plainLineBreak;
//   - a tab becomes a space;
//   - any other C0 or C1 control character or DEL, and invalid UTF-8,
//     becomes U+FFFD (so no escape sequence reaches a terminal);
//   - bidi control characters (U+202A–202E, U+2066–2069, U+200E, U+200F,
//     U+061C) are left out: they could reorder the rest of the line,
//     name included, and a line without them reads the same.
func appendPlainText(b []byte, text string) []byte {
	i := printableASCIIPrefix(text)
	if i == len(text) {
		return append(b, text...) // the common case
	}
	if !utf8.ValidString(text[i:]) {
		text = strings.ToValidUTF8(text, "\ufffd") // rare: only scripts can produce it
	}
	start := 0
	for ; i < len(text); i++ {
		c := text[i]
		if !plainSpecial[c] {
			continue
		}
		// text is valid UTF-8, so a lead byte has its continuation bytes.
		n, repl := 1, "\ufffd"
		switch {
		case c == '\r':
			if i+1 < len(text) && text[i+1] == '\n' {
				n = 2 // CR LF is one break
			}
			repl = plainLineBreak
		case c == '\n' || c == '\v' || c == '\f':
			repl = plainLineBreak
		case c == '\t':
			repl = " "
		case c < 0x20 || c == 0x7f:
		case c == 0xc2: // U+0080–U+00BF: C1 controls are C2 80 – C2 9F
			d := text[i+1]
			if d > 0x9f {
				continue
			}
			n = 2
			if d == 0x85 { // NEL
				repl = plainLineBreak
			}
		case c == 0xd8: // U+0600–U+063F: ALM U+061C is D8 9C
			if text[i+1] != 0x9c {
				continue
			}
			n, repl = 2, ""
		default: // 0xe2, U+2000–U+2FFF
			d, e := text[i+1], text[i+2]
			switch {
			case d == 0x80 && (e == 0x8e || e == 0x8f || 0xaa <= e && e <= 0xae): // U+200E/F, U+202A–202E
				n, repl = 3, ""
			case d == 0x81 && 0xa6 <= e && e <= 0xa9: // U+2066–2069
				n, repl = 3, ""
			case d == 0x80 && (e == 0xa8 || e == 0xa9): // U+2028, U+2029
				n, repl = 3, plainLineBreak
			default:
				continue
			}
		}
		b = append(b, text[start:i]...)
		b = append(b, repl...)
		i += n - 1
		start = i + 1
	}
	return append(b, text[start:]...)
}

// printableASCIIPrefix returns a length n such that text[:n] is printable
// ASCII (0x20–0x7E); n is at a word boundary, or len(text) when all of
// text is. It tests 8 bytes at a time: most chat texts are all printable.
func printableASCIIPrefix(text string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(text); i += 8 {
		w := uint64(text[i]) | uint64(text[i+1])<<8 | uint64(text[i+2])<<16 | uint64(text[i+3])<<24 |
			uint64(text[i+4])<<32 | uint64(text[i+5])<<40 | uint64(text[i+6])<<48 | uint64(text[i+7])<<56
		// A byte < 0x20 has its high bit set in w-0x20… while not in w;
		// a byte >= 0x7F has it set in w+0x01… or in w. Carries only
		// propagate from a byte that is flagged already.
		if ((w-0x20*ones)&^w|(w+ones)|w)&highs != 0 {
			return i
		}
	}
	for ; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c >= 0x7f {
			return i
		}
	}
	return i
}

// plainSpecial marks the bytes appendPlainText must look at: ASCII
// controls and DEL, and the lead bytes of the characters it replaces or
// drops (C2: C1 controls, D8: U+061C, E2: U+2000–U+2FFF).
var plainSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t[0x7f], t[0xc2], t[0xd8], t[0xe2] = true, true, true, true
	return t
}()

// textProblem says why the server refuses a chat message text ("" when
// it accepts it): control characters other than tab, line feed and
// carriage return, that is NUL, BEL, ESC, …, DEL and the C1 controls
// U+0080–U+009F. They have no place in chat and exist to drive terminals.
// Accepted texts may still hold line breaks and bidi controls:
// appendPlainText makes them safe for plain-text delivery.
func textProblem(text string) string {
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r', c == 0x7f:
			return "control character " + runeCode(rune(c)) + " is not allowed (only tab and line breaks are)"
		case c == 0xc2 && i+1 < len(text) && 0x80 <= text[i+1] && text[i+1] <= 0x9f:
			// U+0080–U+009F, encoded as C2 80 – C2 9F.
			return "control character " + runeCode(rune(text[i+1])) + " is not allowed (only tab and line breaks are)"
		}
	}
	return ""
}

// appendPlainMessage appends "NICK: TEXT".
func appendPlainMessage(b []byte, user, text string) []byte {
	b = appendPlainText(b, user)
	b = append(b, ": "...)
	return appendPlainText(b, text)
}

// appendPlainAction appends "* NICK TEXT", a /me action. It reads like a
// notice but always begins with its author's name.
func appendPlainAction(b []byte, user, text string) []byte {
	b = append(b, "* "...)
	b = appendPlainText(b, user)
	b = append(b, ' ')
	return appendPlainText(b, text)
}

// appendPlainChat appends a chat message or action in its plain form.
func appendPlainChat(b []byte, m *Message) []byte {
	if m.Action {
		return appendPlainAction(b, m.User, m.Text)
	}
	return appendPlainMessage(b, m.User, m.Text)
}

// plainReplayLayout is the time of a replayed plain-text line, in UTC:
// "[2026-12-02 14:03 UTC] alice: hi".
const plainReplayLayout = "[2006-01-02 15:04 UTC] "

// appendPlainReplay appends a stored message as replayed to a plain-text
// client: its time, then the message as it was shown live.
func appendPlainReplay(b []byte, m *Message) []byte {
	b = m.Time.UTC().AppendFormat(b, plainReplayLayout)
	return appendPlainChat(b, m)
}

// plainEndOfHistory is the notice that follows a plain-text replay: what
// comes after it is live.
const plainEndOfHistory = "--- end of history ---"

// appendPlainNotice appends "* TEXT".
func appendPlainNotice(b []byte, text string) []byte {
	b = append(b, "* "...)
	return appendPlainText(b, text)
}

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
}

// decodeClientEvent parses one JSON client frame. Only "message" (with a
// text), "history" (with at most one of before and after) and "presence"
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
	case "presence":
	case "":
		return ev, frameError(`no "type" field`)
	default:
		return ev, frameError(`unknown type %q (want "message", "history" or "presence")`, ev.Type)
	}
	return ev, nil
}
