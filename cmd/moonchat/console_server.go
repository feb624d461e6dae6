package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moonchat/moonchat/scripting"
)

// The server side of `moonchat console` (issue 16): three routes on the
// local socket (localsock.go), so that only whoever may open the store
// file's directory — the server's user, root — reaches them; nothing of
// the console is on the network. A console is a session (its Lua globals
// last from line to line) held by the server:
//
//	POST /console/open   {}                        → {"session", "by"}
//	POST /console/eval   {"session", "line"}       → scripting.ConsoleResult
//	POST /console/close  {"session"}               → {}
//
// Every line that runs is first written to the moderation audit log
// (action "console", the line as the reason, by "console:USER" — the
// connecting process's user, from the socket's peer credentials where the
// system gives them); a line whose entry cannot be written is not run
// (fail closed). `[scripting] console = false`, or scripting off, answers
// every route 403 saying so. Sessions hold no goroutine: one idle for
// consoleIdle is closed when another opens, and at most
// maxConsoleSessions are open at once.

// Console session bounds.
const (
	consoleIdle        = time.Hour
	maxConsoleSessions = 8
	consoleAuditAction = "console"
)

// consoleAuditor appends an audit entry and says whether it was written:
// *chat.Server (AuditAction).
type consoleAuditor interface {
	AuditAction(room, by, action, target, reason string) error
}

// consoleServer answers the console routes.
type consoleServer struct {
	off   string            // why the console is off; "" = on
	eng   *scripting.Engine // nil when off
	audit consoleAuditor
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	sessions map[string]*consoleSession
}

// consoleSession is one open console. mu makes its lines run one at a
// time (scripting.Console is not safe for concurrent use).
type consoleSession struct {
	mu   sync.Mutex
	c    *scripting.Console
	by   string
	last time.Time // guarded by consoleServer.mu
}

// consoleOpen is the answer to /console/open.
type consoleOpen struct {
	Session string `json:"session"`
	By      string `json:"by"`
}

// consoleRequest is the body of /console/eval and /console/close.
type consoleRequest struct {
	Session string `json:"session"`
	Line    string `json:"line,omitempty"`
}

// consoleRoutes adds the console's routes to the local socket (nothing
// without one: no store, or it could not be made). Called by open once
// the scripts and the chat server exist.
func (s *server) consoleRoutes() {
	if s.local == nil {
		return
	}
	cs := &consoleServer{log: s.log, now: time.Now, sessions: map[string]*consoleSession{}}
	switch {
	case !s.cfg.Scripting.Console:
		cs.off = "the console is off ([scripting] console = false)"
	case !s.cfg.Scripting.Enabled || s.lua == nil:
		cs.off = "scripting is off ([scripting] enabled = false): there are no Lua scripts to talk to"
	default:
		cs.eng, cs.audit = s.lua, s.chat
	}
	cs.routes(s.local.handle)
}

// routes registers the three routes with handle.
func (cs *consoleServer) routes(handle func(string, http.Handler)) {
	handle("POST /console/open", http.HandlerFunc(cs.open))
	handle("POST /console/eval", http.HandlerFunc(cs.eval))
	handle("POST /console/close", http.HandlerFunc(cs.close))
}

func (cs *consoleServer) open(w http.ResponseWriter, r *http.Request) {
	if cs.off != "" {
		localFail(w, http.StatusForbidden, errors.New(cs.off))
		return
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	sid := hex.EncodeToString(id[:])
	sess := &consoleSession{c: cs.eng.NewConsole(), by: "console:" + peerUser(r)}
	var idle []*consoleSession
	cs.mu.Lock()
	now := cs.now()
	for k, old := range cs.sessions {
		if now.Sub(old.last) > consoleIdle && old.mu.TryLock() {
			delete(cs.sessions, k)
			idle = append(idle, old)
		}
	}
	full := len(cs.sessions) >= maxConsoleSessions
	if !full {
		sess.last = now
		cs.sessions[sid] = sess
	}
	cs.mu.Unlock()
	for _, old := range idle {
		old.c.Close()
		old.mu.Unlock()
	}
	if full {
		localFail(w, http.StatusServiceUnavailable, fmt.Errorf("%d consoles are open already: close one (they close after %v idle)", maxConsoleSessions, consoleIdle))
		return
	}
	cs.log.Info("console opened", "by", sess.by)
	writeLocalJSON(w, http.StatusOK, consoleOpen{Session: sid, By: sess.by})
}

// session finds the request's session (nil: answered with an error).
func (cs *consoleServer) session(w http.ResponseWriter, r *http.Request) (*consoleSession, consoleRequest) {
	var req consoleRequest
	if cs.off != "" {
		localFail(w, http.StatusForbidden, errors.New(cs.off))
		return nil, req
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 2*scripting.MaxConsoleLine+1024)).Decode(&req); err != nil {
		localFail(w, http.StatusBadRequest, fmt.Errorf("not a console request: %w", err))
		return nil, req
	}
	cs.mu.Lock()
	sess := cs.sessions[req.Session]
	if sess != nil {
		sess.last = cs.now()
	}
	cs.mu.Unlock()
	if sess == nil {
		localFail(w, http.StatusNotFound, fmt.Errorf("no such console session (closed after %v idle, or the server restarted): start the console again", consoleIdle))
	}
	return sess, req
}

func (cs *consoleServer) eval(w http.ResponseWriter, r *http.Request) {
	sess, req := cs.session(w, r)
	if sess == nil {
		return
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if strings.TrimSpace(req.Line) == "" {
		writeLocalJSON(w, http.StatusOK, scripting.ConsoleResult{}) // nothing runs, nothing to audit
		return
	}
	if len(req.Line) > scripting.MaxConsoleLine {
		localFail(w, http.StatusBadRequest, fmt.Errorf("line of %d bytes not run: at most %d", len(req.Line), scripting.MaxConsoleLine))
		return
	}
	if err := cs.audit.AuditAction("", sess.by, consoleAuditAction, "", req.Line); err != nil {
		localFail(w, http.StatusServiceUnavailable, fmt.Errorf("line not run: the audit log could not record it: %w", err))
		return
	}
	res, err := sess.c.Eval(r.Context(), req.Line)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, scripting.ErrConsoleLine) {
			status = http.StatusBadRequest
		}
		localFail(w, status, fmt.Errorf("line not run: %w", err))
		return
	}
	if res.Reloaded {
		cs.log.Info("console: scripts reloaded", "by", sess.by)
	}
	writeLocalJSON(w, http.StatusOK, res)
}

func (cs *consoleServer) close(w http.ResponseWriter, r *http.Request) {
	sess, req := cs.session(w, r)
	if sess == nil {
		return
	}
	cs.mu.Lock()
	delete(cs.sessions, req.Session)
	cs.mu.Unlock()
	sess.mu.Lock()
	sess.c.Close()
	sess.mu.Unlock()
	cs.log.Info("console closed", "by", sess.by)
	writeLocalJSON(w, http.StatusOK, struct{}{})
}
