package chat

import (
	"strings"
	"unicode/utf8"
)

// This file and wire_json.go are the wire contract of docs/protocol.md in
// code: how events are encoded for the two formats and how JSON client
// events are decoded. This file holds what both formats share (formats,
// error codes, the text rules) and the plain-text encoders; wire_json.go
// the JSON encoders and the client event decoder. The encoders append to a
// caller's buffer so a room can encode a whole batch into one reused arena.

// format is a connection's wire format, chosen by the subprotocol.
type format uint8

const (
	formatPlain format = iota
	formatJSON
)

// Error codes of the JSON "error" event (docs/protocol.md).
const (
	codeBadRequest   = "bad_request"
	codeBinary       = "binary"
	codeTooLong      = "too_long"
	codeFlood        = "flood"
	codeDropped      = "dropped"
	codeRefused      = "refused"
	codeNoHistory    = "no_history"
	codeNotAllowed   = "not_allowed"   // the room rules refuse it (access.go)
	codeTokenRefused = "token_refused" // a token refresh was refused (expiry.go)
	codeMuted        = "muted"         // the sender is muted (moderation.go)
	codeSlowMode     = "slow_mode"     // slow mode: too soon after the sender's last message
	// codeUnknownCommand is only ever set by hooks (MessageResult.Code).
	codeUnknownCommand = "unknown_command"
)

// dropCode returns the error code for a message a hook dropped: the hook's
// code when the protocol lists it, else "dropped", so that clients only
// ever see documented codes.
func dropCode(code string) string {
	switch code {
	case codeBadRequest, codeBinary, codeTooLong, codeFlood, codeDropped,
		codeRefused, codeNoHistory, codeUnknownCommand, codeMuted, codeSlowMode:
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
