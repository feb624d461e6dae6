package chat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Credentials expiry (issue 12): a member whose credentials expire
// (Identity.Expires, member.expires) is closed with close code 4001
// "token expired" when they do, unless a moonchat.v1 client sent fresh
// credentials first ({"type":"token","token":T}, docs/protocol.md) and
// Config.Authenticator, a TokenRefresher, accepted them for the same
// account. The timer is Config.Clock's, so tests decide when time passes.

// statusTokenExpired is the close code of a connection whose credentials
// expired: in the range RFC 6455 section 7.4.2 leaves to applications
// (4000-4999).
const statusTokenExpired ws.StatusCode = 4001

// closeTokenExpired is its close reason.
const closeTokenExpired = "token expired"

// refreshGroup owns the token refresh goroutines (refreshToken): each is
// counted from before it starts until it has done everything it does, and
// Shutdown waits for them (wait) after the rooms, so that none outlives
// the server (nor writes to a History or logger its caller closes next).
// TokenRefresher.Refresh takes no context: Shutdown cannot hurry one
// along, it can only wait, as long as its context allows. The zero value
// is ready to use.
//
// Invariants (guarded by mu): n counts the goroutines running; once
// closing is set, none starts (add reports false) and idle is closed as
// soon as n is 0.
type refreshGroup struct {
	mu      sync.Mutex
	n       int
	closing bool
	idle    chan struct{}
}

// add counts one more refresh goroutine about to start; false once
// Shutdown began (then none may start).
func (g *refreshGroup) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.n++
	return true
}

// done counts a refresh goroutine out, as its last act.
func (g *refreshGroup) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.closing && g.n == 0 {
		close(g.idle)
	}
}

// wait stops new refreshes and waits until those running have ended, or
// ctx ends first (an error saying how many are left; they end when their
// Refresh returns, with nobody left to answer). Shutdown calls it; a
// second call waits again.
func (g *refreshGroup) wait(ctx context.Context) error {
	g.mu.Lock()
	if !g.closing {
		g.closing = true
		g.idle = make(chan struct{})
		if g.n == 0 {
			close(g.idle)
		}
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		n := g.n
		g.mu.Unlock()
		if n == 0 {
			return nil
		}
		return fmt.Errorf("%d token refresh(es) still running: %w", n, ctx.Err())
	}
}

// expiry is one member's credentials expiry: when they expire now, the
// timer that closes the member then, and whether a refresh is under way.
//
// Invariants (all guarded by mu):
//   - the timer is armed only while started and not stopped, and only when
//     at is not zero; every (re-)arming and stop bumps gen, and a timer
//     callback or an opExpired of an older generation does nothing, so a
//     refresh wins over an expiry already on its way;
//   - started is set by the join (the welcome follows it), stopped when
//     the member leaves the room: no timer outlives its member;
//   - refreshing is set while one refresh goroutine runs for the member:
//     at most one at a time.
type expiry struct {
	mu         sync.Mutex
	at         time.Time // zero: the credentials do not expire
	timer      Timer
	gen        uint64
	started    bool
	stopped    bool
	refreshing bool
}

// startExpiry arms m's expiry timer from its credentials (join, room
// goroutine, once m is a member).
func (s *Server) startExpiry(m *member) {
	e := &m.expiry
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopped {
		return
	}
	e.started = true
	e.at = m.expires
	s.armExpiryLocked(m)
}

// stopExpiry stops m's expiry timer for good (m left the room).
func (s *Server) stopExpiry(m *member) {
	e := &m.expiry
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopped = true
	e.gen++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// armExpiryLocked (re)arms m's timer for e.at. e.mu must be held.
func (s *Server) armExpiryLocked(m *member) {
	e := &m.expiry
	e.gen++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.at.IsZero() || e.stopped {
		return
	}
	gen := e.gen
	d := time.Until(e.at)
	if d <= 0 {
		// Already expired (a token within the verifier's leeway): no
		// timer to wait for.
		m.room.enqueue(op{kind: opExpired, m: m, expiryGen: gen})
		return
	}
	e.timer = s.cfg.Clock.AfterFunc(d, func() { s.expiryDue(m, gen) })
}

// expiryDue runs in the timer's goroutine: it asks the room to close m,
// unless a refresh or a leave made this timer stale.
func (s *Server) expiryDue(m *member, gen uint64) {
	e := &m.expiry
	e.mu.Lock()
	current := !e.stopped && e.gen == gen
	e.mu.Unlock()
	if current {
		m.room.enqueue(op{kind: opExpired, m: m, expiryGen: gen})
	}
}

// expire closes m with 4001 "token expired" and removes it (opExpired),
// after what the room already sent it, unless a refresh came first.
func (r *room) expire(m *member, gen uint64) {
	s := r.srv
	e := &m.expiry
	e.mu.Lock()
	current := !e.stopped && e.gen == gen
	e.mu.Unlock()
	if !current || !m.joined.Load() {
		return
	}
	s.metrics.tokenExpired.Add(1)
	s.log.Info("chat: credentials expired: connection closed", "room", r.name, "session", m.id, "remote", m.addr)
	r.flushAndWait()
	_ = m.conn.Close(statusTokenExpired, closeTokenExpired)
	r.remove(m)
}

// refreshToken handles a moonchat.v1 {"type":"token","token":T} from m
// (OnMessage, on the engine's event loop). The token is verified by
// Config.Authenticator's TokenRefresher in a goroutine of its own: a
// signature check must not hold up the loop that serves many other
// connections. At most one refresh per member runs at a time; the
// goroutine belongs to s.refreshes, which Shutdown waits for, and ends
// when Refresh returns and its answer is sent (none starts once Shutdown
// began: "server shutting down"). Every
// refusal is an error event "token_refused", logged (never the token) and
// counted; the connection then keeps its old expiry.
func (s *Server) refreshToken(m *member, token string) {
	// A token event costs a signature check: it counts against the
	// connection's flood bucket like a message. Refusals for flooding
	// are counted but not logged (that would be a flood of its own).
	if !s.allowFlood(m, s.floodNow(time.Now()), true) {
		s.metrics.tokenRefused.Add(1)
		return
	}
	if m.account == "" {
		s.refuseToken(m, "a guest has no token to refresh: reconnect to log in")
		return
	}
	tr, ok := s.cfg.Authenticator.(TokenRefresher)
	if !ok {
		s.refuseToken(m, "this server cannot refresh tokens: reconnect with a new one")
		return
	}
	e := &m.expiry
	e.mu.Lock()
	reason := ""
	switch {
	case !e.started || e.stopped:
		reason = "not in the room"
	case e.refreshing:
		reason = "a token refresh is already under way"
	default:
		e.refreshing = true
	}
	e.mu.Unlock()
	if reason == "" && !s.refreshes.add() {
		reason = "server shutting down"
		e.mu.Lock()
		e.refreshing = false
		e.mu.Unlock()
	}
	if reason != "" {
		s.refuseToken(m, reason)
		return
	}
	go s.refresh(m, tr, token)
}

// refresh verifies token for m and applies it (see refreshToken). It is a
// goroutine of s.refreshes, counted out when it returns.
func (s *Server) refresh(m *member, tr TokenRefresher, token string) {
	defer s.refreshes.done()
	id, err := tr.Refresh(token, m.roomName)
	reason := ""
	switch {
	case err != nil:
		reason = "token refused"
		var ae *AuthError
		if errors.As(err, &ae) && ae.Reason != "" {
			reason = ae.Reason
		}
	case id.ID != m.account:
		reason = "the token names another account: reconnect to change accounts"
	case id.Rooms != nil && !RoomAllowed(id.Rooms, m.roomName):
		reason = "the token does not allow room " + strconv.Quote(m.roomName)
	}
	e := &m.expiry
	e.mu.Lock()
	e.refreshing = false
	gone := e.stopped
	if reason == "" && !gone {
		e.at = id.Expires
		s.armExpiryLocked(m)
	}
	e.mu.Unlock()
	switch {
	case gone:
		return // left meanwhile: nobody to answer
	case reason != "":
		s.refuseToken(m, reason)
		return
	}
	s.metrics.tokenRefreshed.Add(1)
	s.log.Debug("chat: token refreshed", "room", m.roomName, "session", m.id, "expires", id.Expires)
	m.write(appendJSONToken(nil, id.Expires))
}

// refuseToken answers a refused token refresh: logged (never the token),
// counted, and an error event token_refused to m.
func (s *Server) refuseToken(m *member, reason string) {
	s.metrics.tokenRefused.Add(1)
	s.log.Info("chat: token refresh refused", "room", m.roomName, "session", m.id, "remote", m.addr, "reason", reason)
	m.sendError(codeTokenRefused, "token refused: "+reason)
}
