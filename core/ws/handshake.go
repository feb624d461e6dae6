package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"
)

// HandshakeError is a refused opening handshake: the HTTP status written to
// the client (400, 403, 426, 503, ...) and the one-line reason in its body.
type HandshakeError struct {
	Status int
	Reason string
}

// Error implements error.
func (e *HandshakeError) Error() string {
	return "websocket handshake: " + http.StatusText(e.Status) + ": " + e.Reason
}

func badRequest(reason string) *HandshakeError {
	return &HandshakeError{Status: http.StatusBadRequest, Reason: reason}
}

// acceptGUID is the fixed GUID of RFC 6455 section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key
// (RFC 6455 section 4.2.2 step 5.4): the base64 SHA-1 of the key (as sent,
// base64 text) and the GUID. Clients use it to check the server's answer.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// headerHasToken reports whether any value of header name, read as a
// comma-separated list, contains token (case-insensitively), as section
// 4.2.1 requires for Upgrade and Connection ("keep-alive, Upgrade").
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// IsUpgradeRequest reports whether r asks for a WebSocket upgrade (its
// Connection header lists "upgrade" and its Upgrade header "websocket"), so
// that a handler can route it to Upgrade and everything else to pages.
func IsUpgradeRequest(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// isHixie76 reports whether r is a hixie-76 handshake: it carries the two
// numeric keys that RFC 6455 replaced with Sec-WebSocket-Key.
func isHixie76(r *http.Request) bool {
	return r.Header.Get("Sec-WebSocket-Key1") != "" || r.Header.Get("Sec-WebSocket-Key2") != ""
}

// checkCommon validates what both handshake versions require: GET over
// HTTP/1.1 or later (HTTP/2 would need RFC 8441, which we do not speak), a
// Host, and the Upgrade/Connection tokens.
func checkCommon(r *http.Request) *HandshakeError {
	if r.Method != http.MethodGet {
		return badRequest("method must be GET")
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return badRequest("HTTP/1.1 required")
	}
	if r.Host == "" {
		return badRequest("missing Host header")
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return badRequest("Upgrade header must include websocket")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return badRequest("Connection header must include upgrade")
	}
	return nil
}

// checkRFC6455 validates an RFC 6455 opening handshake (section 4.2.1) and
// returns the client's key.
func checkRFC6455(r *http.Request) (string, *HandshakeError) {
	if err := checkCommon(r); err != nil {
		return "", err
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "", badRequest("exactly one Sec-WebSocket-Key header required")
	}
	key := strings.TrimSpace(keys[0])
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return "", badRequest("Sec-WebSocket-Key must be 16 bytes in base64")
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return "", &HandshakeError{Status: http.StatusUpgradeRequired, Reason: "unsupported Sec-WebSocket-Version (13 required)"}
	}
	return key, nil
}

// selectSubprotocol returns the first protocol in the client's
// Sec-WebSocket-Protocol list that the server supports, or "".
func selectSubprotocol(r *http.Request, supported []string) string {
	if len(supported) == 0 {
		return ""
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			t = strings.TrimSpace(t)
			for _, s := range supported {
				if t == s {
					return s
				}
			}
		}
	}
	return ""
}
