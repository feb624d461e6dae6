package chat

import (
	"strconv"
	"time"
)

// The wire form of direct messages (docs/protocol.md, "Direct
// messages"): the moonchat.v1 "direct", "conversations" and direct
// "history" events, and the plain "[dm] alice: hi" and
// "[dm to bob] alice: hi" lines.

// dmView is one direct message as one viewer sees it: with (and withID,
// the peer's account id when it has one) is the other user from the
// viewer's side; from and to the sender's and the recipient's names.
type dmView struct {
	msg          *Message
	with, withID string
	from, to     string
}

// appendJSONDirectFields appends the fields of a direct message object,
// without braces or type: the "direct" event and the entries of a direct
// "history" event and of GET /api/direct. Never "room" nor "action".
func appendJSONDirectFields(b []byte, d *dmView) []byte {
	m := d.msg
	b = append(b, `"id":`...)
	b = strconv.AppendUint(b, m.ID, 10)
	b = append(b, `,"with":`...)
	b = appendJSONString(b, d.with)
	if d.withID != "" {
		b = append(b, `,"with_id":`...)
		b = appendJSONString(b, d.withID)
	}
	b = append(b, `,"from":`...)
	b = appendJSONString(b, d.from)
	b = append(b, `,"to":`...)
	b = appendJSONString(b, d.to)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, m.Text)
	b = append(b, `,"ts":"`...)
	b = m.Time.UTC().AppendFormat(b, tsLayout)
	b = append(b, '"')
	if a := m.Account; a != nil {
		if a.ID != "" {
			b = append(b, `,"user_id":`...)
			b = appendJSONString(b, a.ID)
		}
		b = appendJSONRoles(b, a.Roles)
	}
	return b
}

// appendJSONDirect appends a "direct" event.
func appendJSONDirect(b []byte, d *dmView) []byte {
	b = append(b, `{"type":"direct",`...)
	b = appendJSONDirectFields(b, d)
	return append(b, '}')
}

// appendPlainDirect appends a direct message's plain line: "[dm to bob]
// alice: hi" for the sender's own connections (sent), "[dm] alice: hi"
// for the recipient's. Terminal-safe like every plain line.
func appendPlainDirect(b []byte, d *dmView, sent bool) []byte {
	if sent {
		b = append(b, "[dm to "...)
		b = appendPlainText(b, d.to)
		b = append(b, "] "...)
	} else {
		b = append(b, "[dm] "...)
	}
	return appendPlainMessage(b, d.from, d.msg.Text)
}

// appendJSONDirectMessages appends `,"messages":[...]`: direct message
// objects without type.
func appendJSONDirectMessages(b []byte, views []dmView) []byte {
	b = append(b, `,"messages":[`...)
	for i := range views {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendJSONDirectFields(b, &views[i])
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONDirectHistory appends a direct "history" event: like a
// room's, with "with" (and "with_id") in place of "room".
func appendJSONDirectHistory(b []byte, with, withID, reason string, views []dmView, complete, more bool) []byte {
	b = append(b, `{"type":"history","with":`...)
	b = appendJSONString(b, with)
	if withID != "" {
		b = append(b, `,"with_id":`...)
		b = appendJSONString(b, withID)
	}
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, reason)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, complete)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, more)
	b = appendJSONDirectMessages(b, views)
	return append(b, '}')
}

// convEntry is one conversation as listed to its user.
type convEntry struct {
	with, withID string
	lastID       uint64
	lastTime     time.Time
	count        int
}

// appendJSONConversationList appends `"conversations":[…]`, newest
// first as given.
func appendJSONConversationList(b []byte, list []convEntry) []byte {
	b = append(b, `"conversations":[`...)
	for i, c := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"with":`...)
		b = appendJSONString(b, c.with)
		if c.withID != "" {
			b = append(b, `,"with_id":`...)
			b = appendJSONString(b, c.withID)
		}
		b = append(b, `,"last_id":`...)
		b = strconv.AppendUint(b, c.lastID, 10)
		if !c.lastTime.IsZero() {
			b = append(b, `,"last_ts":"`...)
			b = c.lastTime.UTC().AppendFormat(b, tsLayout)
			b = append(b, '"')
		}
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(c.count), 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONConversations appends a "conversations" event.
func appendJSONConversations(b []byte, list []convEntry) []byte {
	b = append(b, `{"type":"conversations",`...)
	b = appendJSONConversationList(b, list)
	return append(b, '}')
}
