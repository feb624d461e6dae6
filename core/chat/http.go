package chat

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/moonchat/moonchat/core/chat/web"
	"github.com/moonchat/moonchat/core/ws"
)

// hostAllowed answers a request whose Host is not a name this server
// answers to (DNS rebinding: a foreign page whose name now points at this
// server; see ws.HostPolicy and Config.WS.Hosts) with 421 Misdirected
// Request and a one-line reason (JSON under /api/), logs and counts it, and
// reports false. It guards every path: the page, /api/*, /metrics and
// WebSocket upgrades, before any of them runs. /healthz is exempt: it
// says only "ok", and health probes (load balancers, orchestrators) send
// whatever address they reach the server by, which it cannot know.
func (s *Server) hostAllowed(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/healthz" {
		return true
	}
	err := s.engine.CheckHost(r)
	if err == nil {
		return true
	}
	s.metrics.hostRefused.Add(1)
	s.logRefusal(slog.LevelInfo, "chat: request refused: Host not allowed", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
	reason := "misdirected request"
	if he, ok := err.(*ws.HandshakeError); ok {
		reason = he.Reason
	}
	if r.Host != "" {
		reason += " (see [server] hosts)"
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		jsonError(w, http.StatusMisdirectedRequest, reason)
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusMisdirectedRequest)
	_, _ = w.Write([]byte(reason + "\n"))
	return false
}

// serveMetrics answers with the server's registry in the Prometheus
// exposition format promhttp negotiates (the text format unless the
// client asks for protobuf; gzip when accepted).
//
// With Config.MetricsNeedToken a request without the admin bearer token
// gets 401 (logged and counted as an admin request, action "metrics").
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.cfg.MetricsNeedToken {
		if !s.adminAuthorized(r) {
			s.adminRefused(w, r, adminMetrics)
			http.Error(w, "admin token required: Authorization: Bearer <[admin] token>", http.StatusUnauthorized)
			return
		}
		s.metrics.admin[adminMetrics][adminOK].Add(1)
	}
	w.Header().Set("Cache-Control", "no-store")
	s.metrics.handler.ServeHTTP(w, r)
}

// serveHistory answers GET /api/history?room=R&before=ID&after=ID&limit=N
// with {"room":R,"messages":[...],"complete":B,"more":B}; see
// docs/protocol.md.
func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
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
	if reason := s.historyRefusal(room, &id); reason != "" {
		s.metrics.historyRefused.Add(1)
		s.logRefusal(slog.LevelInfo, "chat: /api/history refused by the room rules", "room", room, "remote", r.RemoteAddr, "reason", reason)
		jsonError(w, http.StatusForbidden, reason)
		return
	}
	req, ok := parsePageQuery(w, r)
	if !ok {
		return
	}
	if s.history == nil {
		jsonError(w, http.StatusNotFound, "no history: the server runs without a store")
		return
	}
	page, err := s.readPage(room, req)
	if err != nil {
		s.log.Error("chat: /api/history failed", "room", room, "err", err)
		jsonError(w, http.StatusInternalServerError, "reading history failed")
		return
	}
	b := []byte(`{"room":`)
	b = appendJSONString(b, room)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, page.complete)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, page.more)
	b = appendJSONMessages(b, page.msgs)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// parsePageQuery reads the paging parameters of an /api/ request
// (before=ID or after=ID, limit=N), shared by /api/history and
// /api/direct; it answers 400 and reports false when they are wrong.
func parsePageQuery(w http.ResponseWriter, r *http.Request) (pageRequest, bool) {
	q := r.URL.Query()
	parseID := func(key string) (uint64, bool, bool) {
		if !q.Has(key) {
			return 0, false, true
		}
		v, err := strconv.ParseUint(q.Get(key), 10, 64)
		return v, true, err == nil
	}
	before, hasBefore, ok1 := parseID("before")
	after, hasAfter, ok2 := parseID("after")
	if !ok1 || !ok2 {
		jsonError(w, http.StatusBadRequest, "before and after must be message ids (unsigned integers)")
		return pageRequest{}, false
	}
	if hasBefore && hasAfter {
		jsonError(w, http.StatusBadRequest, "give before or after, not both")
		return pageRequest{}, false
	}
	req := pageRequest{before: before, after: after, hasAfter: hasAfter}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n <= 0 {
			jsonError(w, http.StatusBadRequest, "limit must be a positive integer")
			return pageRequest{}, false
		}
		req.limit = n
	}
	return req, true
}

// serveRooms answers GET /api/rooms with
// {"rooms":[{"room":R,"count":N,"first_id":ID,"last_id":ID,"members":N},...]}
// sorted by room name: every room with stored history (from the History's
// RoomLister) merged with every room that has live members now, of which
// only those the caller's identity may read (room rules, and its
// credentials' rooms claim). See docs/protocol.md.
func (s *Server) serveRooms(w http.ResponseWriter, r *http.Request) {
	if !apiGET(w, r) {
		return
	}
	// No room in particular: the rooms claim is applied to each room.
	id, ok := s.identifyAPI(w, r, "")
	if !ok {
		return
	}
	readable := func(room string) bool {
		return (id.rooms == nil || RoomAllowed(id.rooms, room)) && s.allows(room, id.roles, ActionRead)
	}
	if s.history == nil {
		jsonError(w, http.StatusNotFound, "no history: the server runs without a store")
		return
	}
	lister, ok := s.history.(RoomLister)
	if !ok {
		jsonError(w, http.StatusServiceUnavailable, "this server's history store cannot list rooms")
		return
	}
	stats, err := lister.RoomStats()
	if err != nil {
		s.log.Error("chat: /api/rooms failed", "err", err)
		jsonError(w, http.StatusInternalServerError, "listing rooms failed")
		return
	}
	// Read the live counts after the stored ones: a room whose first
	// message is being stored right now then shows up at least as a live
	// room (its members joined before they could send).
	live := s.memberCounts()
	type row struct {
		RoomStat
		members int
	}
	rows := make([]row, 0, len(stats)+len(live))
	for _, st := range stats {
		if IsConversation(st.Name) {
			continue // direct conversations are no rooms (direct_read.go)
		}
		if readable(st.Name) {
			rows = append(rows, row{st, live[st.Name]})
		}
		delete(live, st.Name)
	}
	for name, n := range live {
		if readable(name) {
			rows = append(rows, row{RoomStat{Name: name}, n})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.Name, b.Name) })

	b := []byte(`{"rooms":[`)
	for i, rw := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"room":`...)
		b = appendJSONString(b, rw.Name)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(rw.Count), 10)
		b = append(b, `,"first_id":`...)
		b = strconv.AppendUint(b, rw.FirstID, 10)
		b = append(b, `,"last_id":`...)
		b = strconv.AppendUint(b, rw.LastID, 10)
		b = append(b, `,"members":`...)
		b = strconv.AppendInt(b, int64(rw.members), 10)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// memberCounts returns the number of members of every room that has at
// least one (in a cluster with Config.Presence, on any node). Like Rooms,
// it holds s.mu only to copy the room list (and count the other nodes'
// members of rooms without a goroutine here), then each room's own lock
// in turn.
func (s *Server) memberCounts() map[string]int {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	counts := make(map[string]int)
	if s.presence != nil {
		for name, members := range s.remote().rooms {
			if s.rooms[name] == nil && len(members) > 0 {
				counts[name] = len(members)
			}
		}
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.roster.mu.Lock()
		if n := r.roster.count(); n > 0 {
			counts[r.name] = n
		}
		r.roster.mu.Unlock()
	}
	return counts
}

// hasAccountIn reports whether account has a joined connection in room
// (in a cluster with Config.Presence, on any node): over HTTP such an
// account counts as a member of the room (its history is theirs to read
// even when the room's history is not public).
func (s *Server) hasAccountIn(room, account string) bool {
	if account == "" {
		return false // a guest over HTTP is nobody in particular
	}
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		for _, u := range s.remoteUsers(room) {
			if u.ID == account {
				return true
			}
		}
		return false
	}
	r.roster.mu.Lock()
	defer r.roster.mu.Unlock()
	for _, m := range r.roster.members {
		if m.account == account {
			return true
		}
	}
	for _, rm := range r.roster.remote.order {
		if rm != nil && rm.e.Account == account {
			return true
		}
	}
	return false
}

// checkRoutes says what is wrong with Config.Routes (nil when nothing
// is): a path that is not absolute, has no handler, or is one the server
// serves itself — its endpoints, the admin API's paths, WebSocket paths
// (/, /chat, /chat/ROOM) and the chat page's files — which a route would
// silently take over.
func checkRoutes(routes map[string]http.Handler) error {
	var errs []error
	for p, h := range routes {
		switch {
		case !strings.HasPrefix(p, "/"):
			errs = append(errs, fmt.Errorf("route %q: the path must start with /", p))
		case h == nil:
			errs = append(errs, fmt.Errorf("route %q: no handler", p))
		case servedPath(p):
			errs = append(errs, fmt.Errorf("route %q: the chat server serves this path itself", p))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// servedPath reports whether the chat server answers path itself.
func servedPath(p string) bool {
	switch p {
	case "/", "/chat", "/healthz", "/metrics", "/api/session", "/api/history", "/api/rooms", "/api/direct":
		return true
	}
	if isAdminPath(p) || strings.HasPrefix(p, "/chat/") {
		return true
	}
	// The page's files (index.html, app.js, ...), at their names.
	_, err := fs.Stat(web.FS, strings.TrimPrefix(p, "/"))
	return err == nil
}

// jsonError writes {"error":TEXT} with status.
func jsonError(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b := appendJSONString([]byte(`{"error":`), text)
	_, _ = w.Write(append(b, "}\n"...))
}

// apiGET answers a request to a read-only /api/ endpoint that is not a GET
// or HEAD with 405 and reports false.
func apiGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	jsonError(w, http.StatusMethodNotAllowed, "method not allowed: use GET")
	return false
}

// queryRoom returns the ?room= of an /api/ request (Config.DefaultRoom
// when absent, as for a WebSocket at "/"), or answers 400 for an invalid
// room name and reports false.
func (s *Server) queryRoom(w http.ResponseWriter, r *http.Request) (string, bool) {
	q := r.URL.Query()
	room := q.Get("room")
	if !q.Has("room") {
		room = s.cfg.DefaultRoom
	}
	if err := ValidRoomName(room); err != nil {
		jsonError(w, http.StatusBadRequest, reasonOf(err))
		return room, false
	}
	return room, true
}
