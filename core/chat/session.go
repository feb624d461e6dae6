package chat

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// GET /api/session?room=R (docs/protocol.md): the chat page cannot read
// the HTTP status of a refused WebSocket handshake, so it asks here first,
// with the same credentials, and shows the reason. The answer is the
// decision a handshake to R would get — Config.Authenticator, the token's
// rooms claim, the room rules' read — without upgrading or joining, plus
// what the identity may do in R.

// sessionAnswer is the 200 body of /api/session. Fields that do not apply
// (a guest's id, name and expiry; credentials that never expire) are left
// out.
type sessionAnswer struct {
	Room    string      `json:"room"`
	Guest   bool        `json:"guest"`
	ID      string      `json:"id,omitempty"`
	Name    string      `json:"name,omitempty"`
	Roles   []string    `json:"roles"`
	Expires int64       `json:"expires,omitempty"`
	May     sessionMays `json:"may"`
}

// sessionMays is what the identity may do in the room under the room
// rules (DefaultRoomRule when no rule matches: read and post, no
// moderation).
type sessionMays struct {
	Read     bool `json:"read"`
	Post     bool `json:"post"`
	Moderate bool `json:"moderate"`
}

// serveSession answers GET /api/session?room=R: 200 with sessionAnswer,
// or 401/403 {"error":REASON} with the reason a handshake to R would get
// (401 with WWW-Authenticate). room defaults to Config.DefaultRoom, as for
// a WebSocket at "/".
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	if !apiGET(w, r) {
		return
	}
	room, ok := s.queryRoom(w, r)
	if !ok {
		return
	}
	id, ok := s.identifyAPI(w, r, room)
	if !ok {
		return
	}
	if reason := s.readRefusal(room, id.roles); reason != "" {
		// The reason a join would get (close 1008 after the upgrade);
		// here it is a 403 before anything happens, counted as the
		// handshake's refusals are.
		s.metrics.authRefused403.Add(1)
		s.logRefusal(slog.LevelInfo, "chat: /api/session: room rules refuse read", "remote", r.RemoteAddr, "room", room, "reason", reason)
		jsonError(w, http.StatusForbidden, reason)
		return
	}
	// A ban (moderation.go): the 403 and reason the handshake would get.
	sub := subject{account: id.account, addr: s.clientAddr(r).Addr().Unmap()}
	if id.guest() {
		sub.name = r.URL.Query().Get("name")
	}
	if reason := s.banRefusal(room, sub, r.RemoteAddr); reason != "" {
		jsonError(w, http.StatusForbidden, reason)
		return
	}
	roles := rolesOrGuest(id.roles)
	a := sessionAnswer{
		Room:  room,
		Guest: id.guest(),
		ID:    id.account,
		Roles: roles,
		May: sessionMays{
			Read:     true,
			Post:     s.cfg.RoomRules.Allows(room, roles, ActionPost),
			Moderate: s.cfg.RoomRules.Allows(room, roles, ActionModerate),
		},
	}
	if !id.guest() {
		// The nick the account would join under (upgrade): its name, or
		// its id when the name is not a valid nick.
		a.Name = id.account
		if given, err := checkName(id.name, s.cfg.MaxNameLength); err == nil {
			a.Name = given
		}
	}
	if !id.expires.IsZero() {
		a.Expires = id.expires.Unix()
	}
	writeJSON(w, http.StatusOK, a)
}

// identifyAPI is identify for the HTTP API: a refusal is answered with its
// status and {"error":REASON} (401 with WWW-Authenticate), and false.
func (s *Server) identifyAPI(w http.ResponseWriter, r *http.Request, room string) (identity, bool) {
	id, ae := s.identify(r, room)
	if ae != nil {
		authChallenge(w, ae)
		jsonError(w, ae.Status, ae.Reason)
		return identity{}, false
	}
	return id, true
}

// writeJSON writes v as JSON with status; it is not cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own answer types reach here: they always encode.
		jsonError(w, http.StatusInternalServerError, "encoding the answer failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
