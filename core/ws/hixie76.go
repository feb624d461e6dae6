package ws

import (
	"crypto/md5"
	"encoding/binary"
	"net/http"
	"strings"
)

// This file implements the legacy handshake of draft-hixie-thewebsocketprotocol-76
// (section 5.2 of the draft), accepted only with Config.Hixie76. The client
// sends two keys, each a number with spaces and junk scattered in it, and
// eight random bytes after the request headers; the server proves it read
// them with an MD5 challenge answer.

// hixieKeyPart extracts one key's 32-bit part: the key's digits read as a
// decimal number, divided by its number of spaces. A key without spaces, or
// whose number is not an integral multiple of the spaces, is refused, as
// the draft requires.
func hixieKeyPart(key string) (uint32, *HandshakeError) {
	var n uint64
	spaces := uint64(0)
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c >= '0' && c <= '9':
			n = n*10 + uint64(c-'0')
			if n > 1<<40 { // far above 0xFFFFFFFF × the most spaces a valid key has
				return 0, badRequest("hixie-76 key number too large")
			}
		case c == ' ':
			spaces++
		}
	}
	if spaces == 0 {
		return 0, badRequest("hixie-76 key without spaces")
	}
	if n%spaces != 0 {
		return 0, badRequest("hixie-76 key number not a multiple of its spaces")
	}
	part := n / spaces
	if part > 0xFFFFFFFF {
		return 0, badRequest("hixie-76 key part too large")
	}
	return uint32(part), nil
}

// checkHixie76 validates a hixie-76 request and returns the two key parts.
func checkHixie76(r *http.Request) (p1, p2 uint32, err *HandshakeError) {
	if err := checkCommon(r); err != nil {
		return 0, 0, err
	}
	k1, k2 := r.Header.Values("Sec-WebSocket-Key1"), r.Header.Values("Sec-WebSocket-Key2")
	if len(k1) != 1 || len(k2) != 1 {
		return 0, 0, badRequest("hixie-76 needs exactly one Sec-WebSocket-Key1 and Key2")
	}
	if p1, err = hixieKeyPart(k1[0]); err != nil {
		return 0, 0, err
	}
	if p2, err = hixieKeyPart(k2[0]); err != nil {
		return 0, 0, err
	}
	return p1, p2, nil
}

// hixieChallenge computes the 16-byte answer: MD5 of both parts as 32-bit
// big-endian integers followed by the eight bytes (key3) after the headers.
func hixieChallenge(p1, p2 uint32, key3 [8]byte) [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], p1)
	binary.BigEndian.PutUint32(b[4:], p2)
	copy(b[8:], key3[:])
	return md5.Sum(b[:])
}

// hixieResponse builds the complete 101 response including the challenge
// answer.
func hixieResponse(r *http.Request, proto string, answer [16]byte) []byte {
	scheme := "ws://"
	if r.TLS != nil {
		scheme = "wss://"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = "null"
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Origin: " + sanitizeHeader(origin) + "\r\n")
	b.WriteString("Sec-WebSocket-Location: " + scheme + sanitizeHeader(r.Host+r.RequestURI) + "\r\n")
	if proto != "" {
		b.WriteString("Sec-WebSocket-Protocol: " + proto + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(answer[:])
	return []byte(b.String())
}

// sanitizeHeader drops CR and LF so that echoed request values cannot split
// the response (net/http already refuses them in requests; this is a second
// line of defence).
func sanitizeHeader(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}
