package chat

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The admin API (docs/protocol.md, "Admin API"): endpoints for the
// application that runs the chat, behind Config.AdminToken as a bearer
// token. They act as the server itself: room rules and message hooks do
// not apply to them. Every request is logged (action, room, remote
// address, result; never the token) and counted in
// moonchat_admin_requests_total{action,result}.
//
// Routing uses net/http's ServeMux patterns (method and wildcards). Each
// route is registered twice: with its method, and without it, so that any
// other method gets a JSON 405 naming the allowed one; a catch-all answers
// a JSON 404. ServeHTTP sends only admin paths (isAdminPath) here, and
// only when the API is on and not on a separate listener; AdminHandler
// sends everything but /metrics.

// adminAction is one kind of admin request, a label value of
// moonchat_admin_requests_total.
type adminAction uint8

const (
	adminPost    adminAction = iota // POST /api/rooms/{room}/messages
	adminDelete                     // DELETE /api/messages/{room}/{id}
	adminMembers                    // GET /api/members?room=R
	adminKick                       // POST /api/rooms/{room}/kick
	adminMetrics                    // GET /metrics (counted when it needs the token, see serveMetrics)
	adminAudit                      // GET /api/audit (moderation.go)
	numAdminActions
)

var adminActionNames = [numAdminActions]string{"post", "delete", "members", "kick", "metrics", "audit"}

// adminResult is how an admin request ended, a label value of
// moonchat_admin_requests_total.
type adminResult uint8

const (
	adminOK           adminResult = iota // done (2xx)
	adminUnauthorized                    // no or wrong token (401)
	adminBadRequest                      // a bad room, id, body or name (400)
	adminNotFound                        // no such message or member (404)
	adminFailed                          // the server could not do it (5xx)
	adminForbidden                       // a post "as" a banned or muted name (403)
	numAdminResults
)

var adminResultNames = [numAdminResults]string{"ok", "unauthorized", "bad_request", "not_found", "failed", "forbidden"}

// adminRealm is the WWW-Authenticate challenge of a refused admin request
// (RFC 6750 section 3).
const adminRealm = `Bearer realm="moonchat admin"`

// adminServerName is the name an admin message is posted under when the
// request gives none ("as").
const adminServerName = "server"

// isAdminPath reports whether path belongs to the admin API.
func isAdminPath(path string) bool {
	return path == "/api/members" || path == "/api/audit" || strings.HasPrefix(path, "/api/rooms/") || strings.HasPrefix(path, "/api/messages/")
}

// newAdminMux routes the admin API (see the file comment).
func (s *Server) newAdminMux() *http.ServeMux {
	mux := http.NewServeMux()
	route := func(method, pattern string, action adminAction, h adminFunc) {
		mux.Handle(method+" "+pattern, s.adminOnly(action, h))
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD" // a GET pattern serves HEAD too
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			jsonError(w, http.StatusMethodNotAllowed, "method not allowed: use "+method)
		})
	}
	route(http.MethodPost, "/api/rooms/{room}/messages", adminPost, s.adminPostMessage)
	route(http.MethodDelete, "/api/messages/{room}/{id}", adminDelete, s.adminDeleteMessage)
	route(http.MethodGet, "/api/members", adminMembers, s.adminMembers)
	route(http.MethodPost, "/api/rooms/{room}/kick", adminKick, s.adminKick)
	route(http.MethodGet, "/api/audit", adminAudit, s.adminAuditLog)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		jsonError(w, http.StatusNotFound, "not found")
	})
	return mux
}

// AdminHandler serves the admin API and /metrics alone, for a listener of
// their own ([admin] listen, Config.AdminSeparate): cmd/moonchat mounts it
// there, and ServeHTTP then serves neither. The Host check of ServeHTTP
// applies here too; every other path is 404. The admin API answers 404
// when Config.AdminToken is empty (off); /metrics needs the token when
// Config.MetricsNeedToken is set.
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(w, r) {
			return
		}
		if r.URL.Path == "/metrics" {
			s.serveMetrics(w, r)
			return
		}
		if s.cfg.AdminToken == "" {
			jsonError(w, http.StatusNotFound, "the admin API is off ([admin] token is empty)")
			return
		}
		s.adminMux.ServeHTTP(w, r)
	})
}

// serveAdmin answers an admin path on the main handler: 404 when the API
// is off or served on its own listener.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.cfg.AdminSeparate:
		jsonError(w, http.StatusNotFound, "not found")
	case s.cfg.AdminToken == "":
		jsonError(w, http.StatusNotFound, "the admin API is off ([admin] token is empty)")
	default:
		s.adminMux.ServeHTTP(w, r)
	}
}

// adminFunc handles one authorized admin request: it writes the answer and
// returns how it ended and the room concerned, for the log and the count.
type adminFunc func(w http.ResponseWriter, r *http.Request) (adminResult, string)

// adminOnly runs h for requests bearing the admin token; others get 401
// with a challenge. Either way the request is logged and counted.
func (s *Server) adminOnly(action adminAction, h adminFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.adminAuthorized(r) {
			s.adminRefused(w, r, action)
			jsonError(w, http.StatusUnauthorized, "admin token required: Authorization: Bearer <[admin] token>")
			return
		}
		res, room := h(w, r)
		s.metrics.admin[action][res].Add(1)
		s.log.Info("chat: admin request", "action", adminActionNames[action], "room", room, "remote", r.RemoteAddr, "result", adminResultNames[res])
	})
}

// adminRefused logs and counts a request without the admin token and sets
// the 401's challenge; the caller writes the body.
func (s *Server) adminRefused(w http.ResponseWriter, r *http.Request, action adminAction) {
	s.metrics.admin[action][adminUnauthorized].Add(1)
	s.logRefusal(slog.LevelWarn, "chat: admin request refused: no or wrong admin token", "action", adminActionNames[action], "path", r.URL.Path, "remote", r.RemoteAddr)
	w.Header().Set("WWW-Authenticate", adminRealm)
}

// adminAuthorized reports whether r carries "Authorization: Bearer
// <AdminToken>" (RFC 6750 section 2.1; the scheme is case-insensitive,
// RFC 9110 section 11.1). The token is compared through SHA-256 digests
// with subtle.ConstantTimeCompare, so that neither its bytes nor its
// length show in the time taken. An empty AdminToken authorizes nothing.
// Tokens in URLs are not accepted: they end up in logs.
func (s *Server) adminAuthorized(r *http.Request) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// adminBody decodes an admin request's JSON body into v: one object, no
// unknown field, at most limit bytes. It answers 400 itself and reports
// false when the body will not do.
func adminBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("one JSON object expected, found more")
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			jsonError(w, http.StatusRequestEntityTooLarge, "body too large: at most "+strconv.FormatInt(limit, 10)+" bytes")
			return false
		}
		jsonError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// adminRoom returns the {room} of r's path, or answers 400 and false.
func adminRoom(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.PathValue("room")
	if err := ValidRoomName(room); err != nil {
		jsonError(w, http.StatusBadRequest, reasonOf(err))
		return room, false
	}
	return room, true
}

// adminText returns why text cannot be an admin message or kick reason
// ("" when it can): the rules of a client's chat message (at most
// MaxTextBytes, no control characters but tab and line breaks).
func (s *Server) adminText(text string) string {
	if len(text) > s.cfg.MaxTextBytes {
		return "text too long: at most " + strconv.Itoa(s.cfg.MaxTextBytes) + " bytes"
	}
	if why := textProblem(text); why != "" {
		return "invalid text: " + why
	}
	return ""
}

// bodyLimit is the largest admin body read: a text of MaxTextBytes may
// take six bytes per byte once JSON-escaped (\u0001), plus the rest.
func (s *Server) bodyLimit() int64 { return 6*int64(s.cfg.MaxTextBytes) + 1024 }

// adminPostAnswer is the 201 body of an admin post.
type adminPostAnswer struct {
	Room string `json:"room"`
	ID   uint64 `json:"id"`
	Time string `json:"time"`
}

// adminPostMessage answers POST /api/rooms/{room}/messages with body
// {"text":T,"as":NAME}: it posts T under NAME (default "server"), as a
// chat message of the room — stored, then delivered in the room's order
// — bypassing the room rules and the message hooks. 201 with the stored
// id and time. A ban or mute in force on NAME in the room refuses it with
// 403 (adminAsRefusal): the API must not be a way round them.
func (s *Server) adminPostMessage(w http.ResponseWriter, r *http.Request) (adminResult, string) {
	room, ok := adminRoom(w, r)
	if !ok {
		return adminBadRequest, room
	}
	var body struct {
		Text string `json:"text"`
		As   string `json:"as"`
	}
	if !adminBody(w, r, s.bodyLimit(), &body) {
		return adminBadRequest, room
	}
	if body.As == "" {
		body.As = adminServerName
	}
	name, err := checkName(body.As, s.cfg.MaxNameLength)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "as: "+reasonOf(err))
		return adminBadRequest, room
	}
	if body.Text == "" {
		jsonError(w, http.StatusBadRequest, "text: empty")
		return adminBadRequest, room
	}
	if why := s.adminText(body.Text); why != "" {
		jsonError(w, http.StatusBadRequest, "text: "+why)
		return adminBadRequest, room
	}
	if why := s.adminAsRefusal(room, name, r.RemoteAddr); why != "" {
		jsonError(w, http.StatusForbidden, why)
		return adminForbidden, room
	}
	msg := &Message{Room: room, User: name, Text: body.Text, Time: nowUTC()}
	if err := s.postAsServer(msg); err != nil {
		switch {
		case errors.Is(err, ErrServerClosed):
			jsonError(w, http.StatusServiceUnavailable, "server shutting down")
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "5")
			jsonError(w, http.StatusServiceUnavailable, unavailableText)
		default:
			jsonError(w, http.StatusInternalServerError, "message not posted: the server could not store it")
		}
		return adminFailed, room
	}
	writeJSON(w, http.StatusCreated, adminPostAnswer{Room: room, ID: msg.ID, Time: msg.Time.Format(tsLayout)})
	return adminOK, room
}

// postAsServer posts msg into its room's pipeline and waits until it is
// stored (or was not): the room goroutine appends it to History in the
// room's single order and only then puts it in the outbox (opAdminPost),
// so it reaches members only once durable, in the same order for all. In
// cluster mode the room publishes it instead (ErrUnavailable without a
// cluster connection) and every node delivers it from the log.
//
// A room without members has no goroutine; one is started for the post,
// held by a reference of its own as a connection would hold it, and
// retired as usual afterwards. Appending straight to History instead
// would race with a member joining meanwhile: its replay could be read
// before the append is durable, and the message would then reach it
// neither in the replay nor live.
func (s *Server) postAsServer(msg *Message) error {
	r, err := s.holdRoom(msg.Room)
	if err != nil {
		return err
	}
	defer s.releaseRoom(r)
	done := make(chan error, 1)
	if !r.enqueue(op{kind: opAdminPost, admin: &adminMsg{msg: msg, done: done}}) {
		return ErrServerClosed
	}
	// The room works its queue to the end even when stopping, and Append
	// gets a context Shutdown cancels: this wait is bounded.
	return <-done
}

// adminMsg is an admin post on its way through the room (opAdminPost):
// the message, and where the room reports whether it was stored.
type adminMsg struct {
	msg  *Message
	done chan<- error // buffered: the room never blocks on it
}

// adminPost stores an admin post and puts it in the outbox (room
// goroutine). It is post() for one message from no member: no room rules,
// no hooks.
func (r *room) adminPost(a *adminMsg) {
	s := r.srv
	if s.broker != nil {
		// Cluster mode: published, and delivered when it comes back
		// (deliver.go), as a member's message.
		if !s.broker.Connected() {
			s.metrics.dropUnavailable.Add(1)
			a.done <- fmt.Errorf("admin message in %s: %w", r.name, ErrUnavailable)
			return
		}
		start := time.Now()
		err := s.broker.Publish(s.ctx, r.name, []*Message{a.msg})
		s.metrics.appendTime.observeSince(start)
		switch {
		case err == nil || a.msg.ID != 0:
			a.done <- nil
		case !s.broker.Connected():
			s.metrics.dropUnavailable.Add(1)
			a.done <- fmt.Errorf("admin message in %s: %w: %w", r.name, ErrUnavailable, err)
		default:
			s.log.Error("chat: publishing an admin message failed", "room", r.name, "err", err)
			a.done <- fmt.Errorf("publish admin message in %s: %w", r.name, err)
		}
		return
	}
	if s.history != nil {
		start := time.Now()
		err := s.history.Append(s.ctx, []*Message{a.msg})
		s.metrics.appendTime.observeSince(start)
		if err != nil {
			s.log.Error("chat: storing an admin message failed", "room", r.name, "err", err)
			a.done <- fmt.Errorf("store admin message in %s: %w", r.name, err)
			return
		}
	}
	r.outMessageFrom(a.msg, 0)
	a.done <- nil
}

// holdRoom returns room's live room, starting it when it has no
// goroutine, with one more reference (releaseRoom drops it). It fails once
// Shutdown began. Config.MaxRooms does not apply: the server itself holds
// the room only for the time of one operation.
func (s *Server) holdRoom(name string) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, ErrServerClosed
	}
	r := s.rooms[name]
	if r == nil {
		prev := s.retired[name]
		delete(s.retired, name)
		r = newRoom(s, name, prev)
		s.rooms[name] = r
		s.roomWG.Add(1)
		go r.run()
	}
	r.refs++
	return r, nil
}

// releaseRoom drops a reference holdRoom took; the last one out retires
// the room, as OnClose does.
func (s *Server) releaseRoom(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.refs--
	if r.refs == 0 && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		s.retired[r.name] = r
		r.stop()
	}
}

// adminDeleteMessage answers DELETE /api/messages/{room}/{id}: the
// message is deleted for good and the room's live members are told
// (Host.Redact). 204, or 404 when no such message is stored.
func (s *Server) adminDeleteMessage(w http.ResponseWriter, r *http.Request) (adminResult, string) {
	room, ok := adminRoom(w, r)
	if !ok {
		return adminBadRequest, room
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "id must be a message id (an unsigned integer)")
		return adminBadRequest, room
	}
	switch err := s.RedactBy(room, id, auditByAdmin); {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return adminOK, room
	case errors.Is(err, ErrNoSuchMessage):
		jsonError(w, http.StatusNotFound, "no such message")
		return adminNotFound, room
	case errors.Is(err, ErrNoHistory):
		jsonError(w, http.StatusNotFound, ErrNoHistory.Error())
		return adminNotFound, room
	case errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, "message not deleted: "+ErrUnavailable.Error())
		return adminFailed, room
	default:
		s.log.Error("chat: admin delete failed", "room", room, "id", id, "err", err)
		jsonError(w, http.StatusInternalServerError, "deleting the message failed")
		return adminFailed, room
	}
}

// adminMember is one entry of GET /api/members.
type adminMember struct {
	Name    string   `json:"name"`
	ID      string   `json:"id,omitempty"`
	Roles   []string `json:"roles"`
	Session uint64   `json:"session"`
	// Node is another node's member's node (cluster presence, remote.go).
	Node string `json:"node,omitempty"`
}

// adminMembers answers GET /api/members?room=R (room defaults to
// Config.DefaultRoom) with the room's members in join order: name,
// account id (accounts only), roles and session id.
func (s *Server) adminMembers(w http.ResponseWriter, r *http.Request) (adminResult, string) {
	room, ok := s.queryRoom(w, r)
	if !ok {
		return adminBadRequest, room
	}
	users := s.Users(room)
	members := make([]adminMember, len(users))
	for i, u := range users {
		members[i] = adminMember{Name: u.Name, ID: u.ID, Roles: rolesOrGuest(u.Roles), Session: u.SessionID, Node: u.Node}
	}
	writeJSON(w, http.StatusOK, struct {
		Room    string        `json:"room"`
		Members []adminMember `json:"members"`
	}{room, members})
	return adminOK, room
}

// adminKick answers POST /api/rooms/{room}/kick with body
// {"name":N,"reason":R}: the member named N is sent R (when not empty)
// and its connection closed with 1000, as Host.Kick does. 204, or 404
// when no member of the room has that name.
func (s *Server) adminKick(w http.ResponseWriter, r *http.Request) (adminResult, string) {
	room, ok := adminRoom(w, r)
	if !ok {
		return adminBadRequest, room
	}
	var body struct {
		Name   string `json:"name"`
		Reason string `json:"reason"`
	}
	if !adminBody(w, r, s.bodyLimit(), &body) {
		return adminBadRequest, room
	}
	if body.Name == "" {
		jsonError(w, http.StatusBadRequest, "name: empty")
		return adminBadRequest, room
	}
	if why := s.adminText(body.Reason); why != "" {
		jsonError(w, http.StatusBadRequest, "reason: "+why)
		return adminBadRequest, room
	}
	var session uint64
	for _, u := range s.Users(room) {
		if u.Name == body.Name {
			session = u.SessionID
			break
		}
	}
	err := ErrNoSuchUser
	if session != 0 {
		// Another node's member is kicked (and audited) by its node.
		err = s.KickBy(session, body.Reason, auditByAdmin)
	}
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return adminOK, room
	case errors.Is(err, ErrNoSuchUser):
		jsonError(w, http.StatusNotFound, "no member named "+strconv.Quote(body.Name)+" in "+room)
		return adminNotFound, room
	case errors.Is(err, ErrServerClosed):
		jsonError(w, http.StatusServiceUnavailable, "server shutting down")
		return adminFailed, room
	default: // another node's member whose node could not be asked
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return adminFailed, room
	}
}

// auditAnswer is one entry of GET /api/audit.
type auditAnswer struct {
	Time   string `json:"time"`
	Room   string `json:"room"`
	By     string `json:"by"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// adminAuditLog answers GET /api/audit?room=R&since=T&limit=N: the
// moderation audit log, oldest first, the N newest entries (default and
// at most Config.APILimit) of room R (none: every room) at or after T (RFC
// 3339 or Unix seconds; none: from the start).
func (s *Server) adminAuditLog(w http.ResponseWriter, r *http.Request) (adminResult, string) {
	q := r.URL.Query()
	room := q.Get("room")
	if room != "" {
		if err := ValidRoomName(room); err != nil {
			jsonError(w, http.StatusBadRequest, reasonOf(err))
			return adminBadRequest, room
		}
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			since = time.Unix(secs, 0).UTC()
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			since = t
		} else {
			jsonError(w, http.StatusBadRequest, "since: want an RFC 3339 time or Unix seconds")
			return adminBadRequest, room
		}
	}
	limit := s.cfg.APILimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			jsonError(w, http.StatusBadRequest, "limit: want a whole number, 1 or more")
			return adminBadRequest, room
		}
		limit = min(n, s.cfg.APILimit)
	}
	entries, err := s.Audit(room, since, limit)
	if err != nil {
		s.log.Error("chat: reading the audit log failed", "room", room, "err", err)
		jsonError(w, http.StatusInternalServerError, "the audit log could not be read")
		return adminFailed, room
	}
	out := make([]auditAnswer, len(entries))
	for i, e := range entries {
		out[i] = auditAnswer{Time: e.Time.UTC().Format(tsLayout), Room: e.Room, By: e.By, Action: e.Action, Target: e.Target, Reason: e.Reason}
	}
	writeJSON(w, http.StatusOK, struct {
		Entries []auditAnswer `json:"entries"`
	}{out})
	return adminOK, room
}
