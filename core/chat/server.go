package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/ws"
)

// Server is the chat server. It is an http.Handler serving the chat page,
// the WebSocket endpoints, /api/session, /api/history, /api/rooms, /api/direct, the
// admin API, /healthz, /metrics and Config.Routes, and it implements Host
// for the scripts.
type Server struct {
	cfg      Config
	hooks    Hooks
	history  History
	broker   Broker      // Config.Broker: nil on a single node (deliver.go)
	shared   SharedState // Config.Shared: nil outside a cluster (shared.go)
	presence Presence    // Config.Presence: nil outside a cluster (remote.go)
	relay    DirectRelay // Config.Presence's, when it relays guests' direct messages (direct_relay.go)
	remoteSt remoteState // other nodes' members, with Config.Presence (remote.go); under mu
	log      *slog.Logger
	engine   *ws.Server
	page     http.Handler
	adminMux *http.ServeMux // the admin API's routes (admin.go)
	metrics  metrics

	// ctx is passed to hooks and History.Append; cancelled by Shutdown
	// once the rooms are done (or its deadline passed).
	ctx    context.Context
	cancel context.CancelFunc

	nextSession atomic.Uint64
	guestSeq    atomic.Uint64
	accounts    accountNames // names held by connected accounts (accounts.go)
	conns       atomic.Int64 // connections counted against MaxConnections

	mu       sync.Mutex
	closing  bool
	rooms    map[string]*room   // rooms with connections assigned
	retired  map[string]*room   // emptied rooms still finishing their queue
	sessions map[uint64]*member // joined or joining members by SessionID
	roomWG   sync.WaitGroup

	// refreshes owns the token refresh goroutines (expiry.go).
	refreshes refreshGroup

	// sweepers is the number of goroutines writing each big room's
	// broadcasts (fanout.go); 0 = the room goroutine writes them.
	sweepers int

	// limits are the per-address limits on handshakes; refusalLog
	// samples the log lines of refused handshakes (addrlimits.go).
	limits     *addrlimit.Limiter
	refusalLog *addrlimit.Sampler
	// checkOrigin is the engine's CheckOrigin (AllowedOrigins; a refusal
	// is logged and counted): upgrade asks it before authentication.
	checkOrigin func(*http.Request) bool

	// floodAddrs and floodAccounts are the flood buckets shared by an
	// address's and an account's connections (flood.go); nil when that
	// limit is off. fakeClock: Config.Clock is not the real one, so the
	// flood limits ask it the time.
	floodAddrs    *floodTable[netip.Prefix]
	floodAccounts *floodTable[string]
	fakeClock     bool

	// mod is the moderation state: bans, mutes, room settings, the audit
	// log (moderation.go).
	mod moderation
	// ign is the accounts' ignore lists (ignore.go).
	ign ignoreState
	// echoes are this node's writes to the SharedState not yet handed
	// back by the watcher (shared.go).
	echoes sharedEchoes
	// dm is the direct-message state (direct_store.go); dmMetrics
	// moonchat_direct_messages_total by result (direct.go).
	dm        directState
	dmMetrics [numDMResults]counter
}

var _ Host = (*Server)(nil)

// New returns a chat server. hooks and history may be nil: no scripting,
// no history (nothing is replayed, ids are 0).
func New(cfg Config, hooks Hooks, history History) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("chat config: %w", err)
	}
	if cfg.Broker != nil && history == nil {
		return nil, fmt.Errorf("chat config: a cluster node (Broker set) needs a History: its replica of the log")
	}
	s := &Server{
		cfg:      cfg,
		hooks:    hooks,
		history:  history,
		broker:   cfg.Broker,
		shared:   cfg.Shared,
		presence: cfg.Presence,
		log:      cfg.Logger,
		rooms:    make(map[string]*room),
		retired:  make(map[string]*room),
		sessions: make(map[uint64]*member),

		floodAddrs:    newFloodTable[netip.Prefix](cfg.FloodRateAddr, cfg.FloodBurstAddr),
		floodAccounts: newFloodTable[string](cfg.FloodRateAccount, cfg.FloodBurstAccount),
	}
	_, realTime := cfg.Clock.(realClock)
	s.fakeClock = !realTime
	if s.page, err = pageHandler(cfg.DefaultRoom); err != nil {
		return nil, err
	}
	s.adminMux = s.newAdminMux()
	if err := s.initMetrics(); err != nil {
		return nil, err
	}
	s.initDirect()
	if dr, ok := cfg.Presence.(DirectRelay); ok {
		s.relay = dr
	}
	if err := s.initLimits(); err != nil {
		return nil, fmt.Errorf("chat config: per-address limits: %w", err)
	}
	modStore, owners, ignores := s.stateStores(history) // shared.go
	if err := s.accounts.loadNameOwners(owners); err != nil {
		return nil, err
	}
	if err := s.initModeration(modStore); err != nil {
		return nil, err
	}
	if err := s.initIgnores(ignores); err != nil {
		s.stopModeration()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if allowed := s.cfg.WS.CheckOrigin; allowed != nil {
		s.cfg.WS.CheckOrigin = func(r *http.Request) bool {
			if allowed(r) {
				return true
			}
			s.originRefused(r) // the caller answers 403
			return false
		}
	}
	s.checkOrigin = s.cfg.WS.CheckOrigin
	s.engine, err = ws.NewServer(handler{s}, s.cfg.WS)
	if err != nil {
		s.cancel()
		s.stopModeration()
		return nil, fmt.Errorf("chat: websocket engine: %w", err)
	}
	s.sweepers = cfg.fanoutWorkers
	if s.sweepers == 0 {
		s.sweepers = runtime.GOMAXPROCS(0)
	}
	s.sweepers = max(s.sweepers, 0)
	return s, nil
}

// ServeHTTP routes a request: WebSocket upgrades at /, /chat and
// /chat/ROOM; /healthz; /metrics; /api/session; /api/history; /api/rooms;
// /api/direct (direct_read.go);
// the admin API (admin.go); Config.Routes by exact path; everything else
// is the chat page and its files. A Host the server does not answer to
// gets 421 on every path but /healthz (hostAllowed). With
// Config.AdminSeparate, /metrics and the admin API are 404 here
// (AdminHandler serves them).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(w, r) {
		return
	}
	path := r.URL.Path
	switch path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok"))
		return
	case "/metrics":
		if s.cfg.AdminSeparate {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		s.serveMetrics(w, r)
		return
	case "/api/session":
		s.limitAPI(w, r, s.serveSession)
		return
	case "/api/history":
		s.limitAPI(w, r, s.serveHistory)
		return
	case "/api/rooms":
		s.limitAPI(w, r, s.serveRooms)
		return
	case "/api/direct":
		s.limitAPI(w, r, s.serveDirect) // direct_read.go
		return
	}
	if h, ok := s.cfg.Routes[path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	if isAdminPath(path) {
		s.serveAdmin(w, r)
		return
	}
	if ws.IsUpgradeRequest(r) {
		room, ok := roomFromPath(path, s.cfg.DefaultRoom)
		if !ok {
			http.Error(w, "no WebSocket endpoint here; use / or /chat/ROOM", http.StatusNotFound)
			return
		}
		s.upgrade(w, r, room)
		return
	}
	s.page.ServeHTTP(w, r)
}

// roomFromPath maps a WebSocket path to its room name (not yet validated).
func roomFromPath(path, def string) (string, bool) {
	switch {
	case path == "/" || path == "/chat":
		return def, true
	case strings.HasPrefix(path, "/chat/"):
		return path[len("/chat/"):], true
	}
	return "", false
}

// upgrade admits the handshake (per-address limits and the global cap,
// addrlimits.go: refused before the upgrade with 429 or 503), checks the
// Origin (403) before the credentials (401/403/503), validates what the
// request asks for and hands it to the engine. Invalid requests
// are still upgraded so that the client learns why it was refused
// (docs/protocol.md): OnOpen refuses them.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, room string) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	client := s.clientAddr(r)
	lease, ok := s.admit(w, r, client)
	if !ok {
		return
	}
	opened := false
	defer func() {
		if !opened { // refused before OnOpen: no OnClose will release
			s.release(lease)
		}
	}()
	// The origin before the credentials: a cross-site page must not make
	// the token check or the connect script run (their side effects, the
	// visitor's cookies with expose_credentials) nor learn their answer.
	if s.checkOrigin != nil && !s.checkOrigin(r) {
		refuseOrigin(w)
		return
	}
	id, ok := s.authenticate(w, r, room)
	if !ok {
		return
	}
	account, roles, name := id.account, id.roles, id.name
	q := r.URL.Query()
	requested := q.Get("name")
	if account != "" {
		// An account's nick is its own: the token's name, not ?name=.
		// A name that is no valid nick (white space, mixed scripts...)
		// falls back to the account id rather than locking the user out.
		requested = name
		if _, err := checkName(name, s.cfg.MaxNameLength); err != nil {
			requested = account
		}
	}
	m := &member{srv: s, id: s.nextSession.Add(1), roomName: room, requested: requested, account: account, roles: roles, rooms: id.rooms, expires: id.expires}
	if account != "" {
		m.acct = &Account{ID: account, Roles: roles}
	}
	m.flood.bucket = newBucket(s.cfg.FloodRate, s.cfg.FloodBurst)
	addrKey, limited := s.floodAddrKey(client)
	m.flood.addrKey, m.flood.noAddr = addrKey, !limited
	if err := ValidRoomName(room); err != nil {
		m.refuseCode, m.refuseReason = ws.StatusPolicyViolation, reasonOf(err)
	} else if m.requested != "" {
		// (An empty request stays empty: the join picks guest-N.)
		given, err := checkName(m.requested, s.cfg.MaxNameLength)
		if err != nil {
			m.refuseCode, m.refuseReason = ws.StatusPolicyViolation, reasonOf(err)
		}
		m.requested = given
	}
	m.lease = lease
	m.client = client.Addr().Unmap()
	if m.refuseCode == 0 {
		// Banned (moderation.go): refused before the upgrade, so that
		// nothing of the room (replay, presence) reaches the client.
		sub := subject{account: account, addr: m.client}
		if account == "" {
			sub.name = m.requested
		}
		if reason := s.banRefusal(room, sub, r.RemoteAddr); reason != "" {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, reason, http.StatusForbidden)
			return
		}
	}
	if client.IsValid() && client.String() != r.RemoteAddr {
		m.addr = client.String() // through a trusted proxy
	}
	if m.refuseCode == 0 && q.Has("since") {
		since, err := strconv.ParseUint(q.Get("since"), 10, 64)
		if err != nil {
			m.refuseCode, m.refuseReason = ws.StatusPolicyViolation, "invalid since: want a message id"
		}
		m.since, m.hasSince = since, true
	}
	if _, err := s.engine.Upgrade(w, r, m); err != nil {
		var he *ws.HandshakeError
		if !errors.As(err, &he) && !errors.Is(err, ws.ErrServerClosed) {
			s.log.Debug("chat: upgrade failed", "remote", r.RemoteAddr, "err", err)
		}
		return
	}
	opened = true // OnClose releases
}

// identity is who a request is, as identify found it: an account (its
// id, nick, roles and expiry) or a guest.
type identity struct {
	account string    // Identity.ID; "" for a guest
	name    string    // the account's nick (Identity.Name, default its id); "" for a guest
	roles   []string  // "guest", or "user" and the credentials' roles
	rooms   []string  // the credentials' rooms claim (RoomAllowed); nil = not narrowed
	expires time.Time // when the credentials expire; zero = never (and for a guest)
}

// guest reports whether id is a guest (no account).
func (id *identity) guest() bool { return id.account == "" }

// identify asks Config.Authenticator who r is, for room: the one decision
// shared by WebSocket handshakes, /api/session, /api/history and
// /api/rooms. A refusal is an *AuthError with status 401 (no or bad
// credentials: an Authenticator's error that is not an *AuthError, or
// carries another status, fails closed to 401) or 403 (not allowed here:
// the Authenticator's 403, or a rooms claim that excludes room). A refusal
// is logged (remote address, path and reason, never the credentials) and
// counted in moonchat_auth_refused_total. room "" asks about no room in
// particular (/api/rooms): the rooms claim is then returned in
// identity.rooms for the caller to apply to each room.
func (s *Server) identify(r *http.Request, room string) (identity, *AuthError) {
	guest := identity{roles: []string{RoleGuest}}
	if s.cfg.Authenticator == nil {
		return guest, nil
	}
	id, authed, err := s.cfg.Authenticator.Authenticate(r, room)
	if err == nil && authed {
		switch {
		case id.ID == "":
			err = &AuthError{Status: http.StatusUnauthorized, Reason: "credentials name no account"}
		case room != "" && id.Rooms != nil && !RoomAllowed(id.Rooms, room):
			err = &AuthError{Status: http.StatusForbidden, Reason: "token does not allow room " + strconv.Quote(room)}
		}
	}
	if err != nil {
		ae := &AuthError{Status: http.StatusUnauthorized, Reason: "credentials refused"}
		var e *AuthError
		if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusServiceUnavailable) {
			ae = e
		}
		switch ae.Status {
		case http.StatusForbidden:
			s.metrics.authRefused403.Add(1)
		case http.StatusServiceUnavailable: // the check could not complete (a connect script failed): refused
			s.metrics.authRefused503.Add(1)
		default:
			s.metrics.authRefused401.Add(1)
		}
		s.logRefusal(slog.LevelInfo, "chat: request refused by authentication", "remote", r.RemoteAddr, "path", r.URL.Path, "room", room, "status", ae.Status, "reason", ae.Reason)
		return identity{}, ae
	}
	if !authed {
		return guest, nil
	}
	roles := append(make([]string, 0, 1+len(id.Roles)), RoleUser)
	for _, role := range id.Roles {
		if role != RoleUser && role != RoleGuest && !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	name := id.Name
	if name == "" {
		name = id.ID
	}
	return identity{account: id.ID, name: name, roles: roles, rooms: id.Rooms, expires: id.Expires}, nil
}

// authenticate is identify for a WebSocket handshake: a refusal is
// answered before the upgrade with its status and the one-line reason in
// plain text, and false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, room string) (identity, bool) {
	id, ae := s.identify(r, room)
	if ae != nil {
		authChallenge(w, ae)
		http.Error(w, ae.Reason, ae.Status)
		return identity{}, false
	}
	return id, true
}

// authChallenge sets WWW-Authenticate on a 401: RFC 6750 section 3, a 401
// names the scheme it wants.
func authChallenge(w http.ResponseWriter, ae *AuthError) {
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="moonchat"`)
	}
}

// reasonOf turns one of our validation errors into a client-facing reason
// (their texts are written for users, see errors.go).
func reasonOf(err error) string { return err.Error() }

// refuse tells m why it is turned away and closes its connection.
func (s *Server) refuse(m *member, code ws.StatusCode, reason string) {
	s.metrics.refused.Add(1)
	m.write(m.appendError(nil, codeRefused, reason))
	_ = m.conn.Close(code, closeReason(reason))
}

// handler adapts Server to ws.Handler without exporting the callbacks.
type handler struct{ s *Server }

// OnOpen assigns the connection to its room (creating the room and its
// goroutine if needed) and queues the join.
func (h handler) OnOpen(c *ws.Conn) {
	s := h.s
	m, ok := c.UserData().(*member)
	if !ok {
		_ = c.Close(ws.StatusInternalError, "internal error")
		return
	}
	m.conn = c
	if m.addr == "" { // not set from a trusted proxy's header
		m.addr = c.RemoteAddr()
	}
	if c.Subprotocol() == SubprotocolJSON {
		m.format = formatJSON
	}
	if m.refuseCode != 0 {
		s.refuse(m, m.refuseCode, m.refuseReason)
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.refuse(m, ws.StatusGoingAway, "server shutting down")
		return
	}
	r := s.rooms[m.roomName]
	if r == nil {
		if len(s.rooms) >= s.cfg.MaxRooms {
			s.mu.Unlock()
			s.refuse(m, ws.StatusTryAgainLater, "too many rooms")
			return
		}
		prev := s.retired[m.roomName]
		delete(s.retired, m.roomName)
		r = newRoom(s, m.roomName, prev)
		s.rooms[m.roomName] = r
		s.roomWG.Add(1)
		go r.run()
	}
	r.refs++
	m.room = r
	s.sessions[m.id] = m
	s.dm.addConn(m)
	// The shared flood buckets are taken before the join is queued: the
	// member's messages may follow at once.
	s.floodOpen(m)
	r.enqueue(op{kind: opJoin, m: m})
	s.mu.Unlock()
}

// OnMessage decodes one frame and applies the per-connection limits; what
// passes is queued to the room. It never blocks.
func (h handler) OnMessage(c *ws.Conn, opcode ws.Opcode, data []byte) {
	s := h.s
	m, ok := c.UserData().(*member)
	if !ok || m.room == nil {
		return // refused: the close is under way
	}
	if opcode != ws.OpText {
		s.metrics.dropBinary.Add(1)
		m.sendError(codeBinary, "binary messages are not supported: send text")
		return
	}
	var text string
	if m.format == formatJSON {
		ev, err := decodeClientEvent(data)
		if err != nil {
			s.metrics.dropBadRequest.Add(1)
			m.sendError(codeBadRequest, err.Error())
			return
		}
		if ev.Type == "token" {
			s.refreshToken(m, *ev.Token) // expiry.go
			return
		}
		if ev.Type == "typing" {
			s.typing(m) // typing.go
			return
		}
		if ev.Type == "delete" {
			s.deleteRequest(m, *ev.ID) // delete.go
			return
		}
		if ev.Type == "direct" || ev.Type == "conversations" || (ev.Type == "history" && ev.With != nil) {
			s.directRequest(m, &ev) // direct.go, direct_read.go
			return
		}
		if ev.Type == "history" || ev.Type == "presence" {
			o := op{kind: opHistory, m: m, limit: ev.Limit}
			switch {
			case ev.Type == "presence":
				o.kind = opPresence
			case ev.After != nil:
				o.kind, o.cursor = opHistoryAfter, *ev.After
			case ev.Before != nil:
				o.cursor = *ev.Before
			}
			m.acquire()
			if !m.room.enqueue(o) {
				m.inflight.Add(-1)
			}
			return
		}
		text = *ev.Text
	} else {
		text = trimNewline(data)
	}
	if len(text) > s.cfg.MaxTextBytes {
		s.metrics.dropTooLong.Add(1)
		m.sendError(codeTooLong, "message too long: at most "+strconv.Itoa(s.cfg.MaxTextBytes)+" bytes")
		return
	}
	if text == "" {
		return // nothing to say
	}
	if why := textProblem(text); why != "" {
		s.metrics.dropBadRequest.Add(1)
		m.sendError(codeBadRequest, "message not sent: "+why)
		return
	}
	now := time.Now()
	if !s.allowFlood(m, s.floodNow(now), false) {
		s.metrics.dropFlood.Add(1)
		return
	}
	s.metrics.messagesIn.Add(1)
	m.acquire()
	if !m.room.enqueue(op{kind: opMessage, m: m, text: text, at: now.UTC()}) {
		m.inflight.Add(-1)
	}
}

// trimNewline copies a plain-text frame, without one trailing line ending
// (line-oriented tools such as websocat may send it).
func trimNewline(data []byte) string {
	n := len(data)
	if n > 0 && data[n-1] == '\n' {
		n--
		if n > 0 && data[n-1] == '\r' {
			n--
		}
	}
	return string(data[:n])
}

// OnClose queues the leave; the last member out retires the room.
func (h handler) OnClose(c *ws.Conn, _ error) {
	s := h.s
	m, ok := c.UserData().(*member)
	if !ok {
		return
	}
	s.release(m.lease)
	m.gone.Store(true)
	if m.room == nil {
		return
	}
	s.floodClose(m)
	s.mu.Lock()
	delete(s.sessions, m.id)
	s.dm.removeConn(m)
	r := m.room
	r.enqueue(op{kind: opLeave, m: m})
	r.refs--
	if r.refs == 0 && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		s.retired[r.name] = r
		r.stop()
	}
	s.mu.Unlock()
	s.dm.dropGuest(m) // a guest's conversations end with its session
}

// roomExited is called by a room goroutine as it returns.
func (s *Server) roomExited(r *room) {
	s.mu.Lock()
	if s.retired[r.name] == r {
		delete(s.retired, r.name)
	}
	s.mu.Unlock()
	close(r.done)
	s.roomWG.Done()
}

// Shutdown stops the server gracefully: no new upgrades; every room
// finishes what it has queued (so every message a client was told about is
// stored and delivered) and calls Hooks.Leave for its remaining members;
// then every connection is closed with 1001 and the engine is stopped,
// and the token refreshes under way (expiry.go) are waited for. When ctx
// ends first, hooks and History.Append get a cancelled context, the engine
// is closed without waiting further, and refreshes still running are left
// to end by themselves (the error says how many).
// Shutdown does not close the History; the caller does that afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopModeration()
	s.stopShared() // shared.go
	s.mu.Lock()
	s.closing = true
	for _, r := range s.rooms {
		r.stop()
	}
	for _, r := range s.retired {
		r.stop()
	}
	s.mu.Unlock()

	roomsDone := make(chan struct{})
	go func() {
		s.roomWG.Wait()
		close(roomsDone)
	}()
	select {
	case <-roomsDone:
	case <-ctx.Done():
		s.cancel() // hurry hooks and Append along
	}
	err := s.engine.Shutdown(ctx, ws.StatusGoingAway, "server shutting down")
	s.cancel()
	<-roomsDone
	// Token refreshes (expiry.go) run beside the rooms: wait for them too.
	err = errors.Join(err, s.refreshes.wait(ctx))
	if err != nil {
		return fmt.Errorf("chat shutdown: %w", err)
	}
	return nil
}
