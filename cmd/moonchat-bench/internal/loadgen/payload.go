package loadgen

import (
	"bytes"
	"strconv"
)

// The payload of every message the load generator sends is the text
//
//	lg RUNID KIND SENDER SEQ SENTNS xxxx…
//
// RUNID tells this run's messages from older ones (replayed history, other
// tools in the room); KIND is 'm' for a measured message, 'b' for the
// barrier that checks every client is in the room, 'i' for the idle-mode
// broadcast, 'w' for a wave of a scale run's workers (worker.go, SEQ is
// the wave's number); SENTNS is the send time in Unix nanoseconds; the x
// padding brings the text to the requested size. Only ASCII letters, digits and
// spaces: no JSON escaping, nothing the default word filter rewrites.

// payload is a decoded message text.
type payload struct {
	kind   byte
	sender int
	seq    uint64
	sent   int64
}

// Payload kinds.
const (
	kindMessage = 'm'
	kindBarrier = 'b'
	kindIdle    = 'i'
	kindWave    = 'w'
)

// appendPayload appends the text of one message to b, padded with 'x' to
// size bytes (longer when size is too small for the header).
func appendPayload(b []byte, runID string, p payload, size int) []byte {
	start := len(b)
	b = append(b, "lg "...)
	b = append(b, runID...)
	b = append(b, ' ', p.kind, ' ')
	b = strconv.AppendInt(b, int64(p.sender), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, p.seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, p.sent, 10)
	b = append(b, ' ')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

var (
	plainSep   = []byte(": ")
	jsonText   = []byte(`"text":"`)
	payloadTag = []byte("lg ")
)

// messageText extracts the chat text from a server frame: the TEXT of a
// plain "NICK: TEXT" line, or the "text" field of a JSON event (without
// unescaping: our payloads need none). ok is false for anything else.
func messageText(frame []byte, json bool) (text []byte, ok bool) {
	if json {
		i := bytes.Index(frame, jsonText)
		if i < 0 {
			return nil, false
		}
		rest := frame[i+len(jsonText):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return nil, false
		}
		return rest[:j], true
	}
	if len(frame) > 0 && frame[0] == '*' {
		return nil, false // a notice
	}
	i := bytes.Index(frame, plainSep)
	if i < 0 {
		return nil, false
	}
	return frame[i+len(plainSep):], true
}

// parsePayload decodes a text made by appendPayload for runID.
func parsePayload(text []byte, runID string) (payload, bool) {
	var p payload
	if !bytes.HasPrefix(text, payloadTag) {
		return p, false
	}
	text = text[len(payloadTag):]
	if len(text) < len(runID)+3 || string(text[:len(runID)]) != runID || text[len(runID)] != ' ' {
		return p, false
	}
	text = text[len(runID)+1:]
	p.kind = text[0]
	if text[1] != ' ' {
		return p, false
	}
	text = text[2:]
	var n [3]uint64
	for k := range n {
		v, rest, ok := parseUint(text)
		if !ok {
			return p, false
		}
		n[k], text = v, rest
	}
	p.sender, p.seq, p.sent = int(n[0]), n[1], int64(n[2])
	return p, true
}

// parseUint reads decimal digits up to a space and skips the space.
func parseUint(b []byte) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	if i == 0 || i > 19 || i >= len(b) || b[i] != ' ' {
		return 0, nil, false
	}
	return v, b[i+1:], true
}
