package ws

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// ErrServerClosed is returned by Upgrade after Shutdown or Close.
var ErrServerClosed = errors.New("websocket: server closed")

// Handler receives connection events. For one Conn, calls never overlap:
// OnOpen first (before any OnMessage), OnMessage in order, OnClose exactly
// once, last. Different Conns run concurrently on the engine's event loops,
// so handlers must be quick and must not block (hand work off instead).
type Handler interface {
	// OnOpen is called once the handshake succeeded, on the goroutine that
	// called Upgrade, before Upgrade returns.
	OnOpen(c *Conn)
	// OnMessage delivers one complete data message. data is only valid
	// during the call (it is reused afterwards).
	OnMessage(c *Conn, op Opcode, data []byte)
	// OnClose reports how the connection ended; err is always a
	// *CloseError.
	OnClose(c *Conn, err error)
}

// Server upgrades HTTP requests to WebSocket connections and drives them:
// on Linux with epoll event loops (one per GOMAXPROCS, no goroutine per
// connection); elsewhere, and for connections that are not plain TCP (TLS),
// with a reader goroutine per connection and a writer while output is
// queued.
type Server struct {
	h     Handler
	cfg   Config
	log   *slog.Logger
	hosts *HostPolicy
	epoch time.Time
	tick  time.Duration // timer sweep period
	pool  bufPool       // message buffers, compressors and inflaters

	// forceFallback makes every connection use the goroutine driver (a
	// test knob, so that tests exercise both drivers on Linux).
	forceFallback bool

	wg     sync.WaitGroup // fallback goroutines
	fbBufs sync.Pool      // fallback.go: read and record buffers of TLS connections, lent while in use

	mu      sync.Mutex
	open    int     // connections whose OnClose has not begun (Len)
	inClose int     // OnClose calls under way (Shutdown and Close wait for them)
	loops   []*loop // started on first use
	noLoops bool    // epoll unavailable
	next    int
	conns   map[*Conn]struct{}
	closing bool
	drained chan struct{} // closed once closing and no connection is left
	stopped bool
}

// NewServer returns a Server that delivers connection events to h.
func NewServer(h Handler, cfg Config) (*Server, error) {
	if h == nil {
		return nil, errors.New("websocket: nil Handler")
	}
	cfg = cfg.withDefaults()
	hosts, err := NewHostPolicy(cfg.Hosts)
	if err != nil {
		return nil, fmt.Errorf("websocket: hosts: %w", err)
	}
	s := &Server{
		hosts:   hosts,
		h:       h,
		cfg:     cfg,
		log:     cfg.Logger,
		epoch:   time.Now(),
		conns:   make(map[*Conn]struct{}),
		drained: make(chan struct{}),
	}
	s.tick = sweepPeriod(cfg)
	return s, nil
}

// sweepPeriod is how often the timers are checked: every second, or a
// quarter of the smallest configured timeout when that is shorter.
func sweepPeriod(cfg Config) time.Duration {
	t := time.Second
	for _, d := range []time.Duration{cfg.PingInterval, cfg.PingTimeout, cfg.IdleTimeout, cfg.WriteTimeout, cfg.CloseTimeout} {
		if d > 0 && d/4 < t {
			t = d / 4
		}
	}
	return max(t, 5*time.Millisecond)
}

// now is the server's monotonic clock in nanoseconds.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// Len returns the number of open connections. A connection stops counting
// as its OnClose begins, so OnClose itself, and anything that learned of
// that call, sees a count without it.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// CheckHost returns nil when r's Host is one the server answers to
// (Config.Hosts, see HostPolicy), else a *HandshakeError with status 421
// and a one-line reason. Upgrade applies it; an application serving other
// paths on the same listener applies it to those too.
func (s *Server) CheckHost(r *http.Request) error { return s.hosts.Check(r) }

// ServeHTTP upgrades the request with no user data. Failures have already
// been answered (400, 403, 421, 426, 503) by Upgrade.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = s.Upgrade(w, r, nil)
}

// refuse answers a failed handshake with the status and a one-line reason.
func refuse(w http.ResponseWriter, e *HandshakeError) *HandshakeError {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Status == http.StatusUpgradeRequired {
		h.Set("Sec-WebSocket-Version", "13")
	}
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, e.Reason+"\n")
	return e
}

// Upgrade performs the opening handshake on w and r (hijacking the
// connection). On a bad request it writes 400 (or 426 with
// Sec-WebSocket-Version: 13, 421 for a Host not in Config.Hosts, 403 for a
// refused origin, 503 when shut down)
// with a one-line reason and returns a *HandshakeError. userData is stored
// in the Conn before OnOpen, which runs before Upgrade returns.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, userData any) (*Conn, error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, refuse(w, &HandshakeError{Status: http.StatusServiceUnavailable, Reason: "server shutting down"})
	}
	hixie := s.cfg.Hixie76 && isHixie76(r)
	var (
		key    string
		p1, p2 uint32
		herr   *HandshakeError
	)
	if hixie {
		p1, p2, herr = checkHixie76(r)
	} else {
		key, herr = checkRFC6455(r)
	}
	if herr != nil {
		s.log.Debug("websocket: handshake refused", "remote", r.RemoteAddr, "status", herr.Status, "reason", herr.Reason)
		return nil, refuse(w, herr)
	}
	if err := s.hosts.Check(r); err != nil {
		he := err.(*HandshakeError)
		s.log.Debug("websocket: host refused", "remote", r.RemoteAddr, "host", r.Host)
		return nil, refuse(w, he)
	}
	check := s.cfg.CheckOrigin
	if check == nil {
		check = func(r *http.Request) bool { return r.Header.Get("Origin") == "" || SameOrigin(r) }
	}
	if !check(r) {
		s.log.Debug("websocket: origin refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		return nil, refuse(w, &HandshakeError{Status: http.StatusForbidden, Reason: "origin not allowed"})
	}
	proto := selectSubprotocol(r, s.cfg.Subprotocols)
	var (
		ext string
		z   *deflateParams
	)
	if s.cfg.Compression && !hixie {
		ext, z = negotiateDeflate(r.Header, s.cfg.CompressionThreshold)
	}

	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, refuse(w, &HandshakeError{Status: http.StatusInternalServerError, Reason: "connection cannot be hijacked"})
	}
	leftover, err := s.finishHandshake(nc, brw, r, hixie, key, p1, p2, proto, ext)
	if err != nil {
		nc.Close()
		return nil, err
	}

	c := &Conn{srv: s, fd: -1, sub: proto, addr: nc.RemoteAddr().String(), userData: userData}
	c.dec = newDecoder(s.cfg.MaxMessageBytes, hixie, &s.pool)
	c.dec.z = z
	if hixie {
		c.flags.Store(fHixie)
	}
	c.lastRead = s.now()
	c.pending = leftover
	s.attach(c, nc)
	if !s.track(c) {
		// Shut down while we were handshaking. OnOpen has not run, so
		// there is no OnClose either: just drop the socket.
		c.setFlagLocked(fDead|fFinal, true)
		if c.lp != nil {
			c.mu.Lock()
			c.epCloseLocked()
			c.mu.Unlock()
		} else {
			_ = c.fb.nc.Close()
		}
		return nil, ErrServerClosed
	}
	s.h.OnOpen(c)
	// Only now may the owner act on the connection (finalize it, call
	// OnClose): a teardown requested during OnOpen was recorded in the
	// flags and is carried out once the owner starts.
	c.mu.Lock()
	c.setFlagLocked(fStarted, true)
	c.mu.Unlock()
	if c.lp != nil {
		c.lp.post(c)
	} else {
		s.fbStart(c)
	}
	return c, nil
}

// finishHandshake reads what the handshake still needs (the hixie-76 key3),
// writes the 101 response (with ext, the accepted extension, as
// Sec-WebSocket-Extensions when not empty) and returns the client bytes
// already buffered past the handshake, which must be decoded before
// anything read later.
func (s *Server) finishHandshake(nc net.Conn, brw *bufio.ReadWriter, r *http.Request, hixie bool, key string, p1, p2 uint32, proto, ext string) ([]byte, error) {
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	var resp []byte
	if hixie {
		var key3 [8]byte
		if _, err := io.ReadFull(brw.Reader, key3[:]); err != nil {
			return nil, fmt.Errorf("websocket: read hixie-76 key3: %w", err)
		}
		resp = hixieResponse(r, proto, hixieChallenge(p1, p2, key3))
	} else {
		b := make([]byte, 0, 160)
		b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
		b = append(b, AcceptKey(key)...)
		b = append(b, "\r\n"...)
		if proto != "" {
			b = append(b, "Sec-WebSocket-Protocol: "...)
			b = append(b, proto...)
			b = append(b, "\r\n"...)
		}
		if ext != "" {
			b = append(b, "Sec-WebSocket-Extensions: "...)
			b = append(b, ext...)
			b = append(b, "\r\n"...)
		}
		resp = append(b, "\r\n"...)
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			return nil, fmt.Errorf("websocket: write handshake: %w", err)
		}
	}
	if _, err := nc.Write(resp); err != nil {
		return nil, fmt.Errorf("websocket: write handshake: %w", err)
	}
	var leftover []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		leftover = append([]byte(nil), b...)
	}
	_ = nc.SetDeadline(time.Time{})
	return leftover, nil
}

// attach picks the connection's driver: epoll for plain TCP on Linux, the
// goroutine driver otherwise.
func (s *Server) attach(c *Conn, nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok && !s.forceFallback {
		if l := s.pickLoop(); l != nil {
			if fd, err := detachTCP(tc); err == nil {
				c.lp = l
				c.fd = int32(fd)
				return
			} else {
				s.log.Warn("websocket: cannot detach socket; using the goroutine driver", "err", err)
			}
		}
	}
	c.fb = newFbConn(c, nc)
}

// pickLoop starts the event loops on first use and picks one round-robin.
// It returns nil where epoll is unavailable and once the server is closing
// (loops must never start after stop has run).
func (s *Server) pickLoop() *loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.stopped {
		return nil
	}
	if s.loops == nil && !s.noLoops {
		loops, err := startLoops(s, runtime.GOMAXPROCS(0))
		if err != nil {
			s.log.Warn("websocket: event loops unavailable; using the goroutine driver", "err", err)
			s.noLoops = true
			return nil
		}
		s.loops = loops
	}
	if len(s.loops) == 0 {
		return nil
	}
	l := s.loops[s.next%len(s.loops)]
	s.next++
	return l
}

// track adds c to the open connections unless the server is closing.
func (s *Server) track(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.open++
	return true
}

// reporting moves a connection from open to OnClose-under-way, just
// before its OnClose is called. Len drops it here, not after OnClose
// returns: otherwise a handler (or a goroutine it signalled) that reads Len
// would still count the connection it has just been told is closed.
func (s *Server) reporting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	s.inClose++
}

// reported counts a connection whose OnClose has returned; Shutdown and
// Close return only after every OnClose has.
func (s *Server) reported() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inClose--
	s.checkDrainedLocked()
}

// forget removes a finalized connection (socket closed).
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *Server) checkDrainedLocked() {
	if s.closing && s.open == 0 && s.inClose == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// beginClose refuses new upgrades and returns the open connections.
func (s *Server) beginClose() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.checkDrainedLocked()
	return conns
}

// Shutdown refuses new upgrades, closes every connection with code and
// reason (after the data already queued), waits for their closing
// handshakes or for ctx, then stops the event loops. When ctx ends first,
// the remaining connections are dropped as by Close and ctx's error is
// returned. Handlers must not call it.
func (s *Server) Shutdown(ctx context.Context, code StatusCode, reason string) error {
	for _, c := range s.beginClose() {
		_ = c.Close(code, reason)
	}
	select {
	case <-s.drained:
		s.stop()
		return nil
	case <-ctx.Done():
		_ = s.Close()
		return ctx.Err()
	}
}

// Close drops every connection at once (each gets a best-effort close frame
// with 1001 and OnClose with 1006), then stops the event loops and waits for
// every goroutine of the server. Handlers must not call it.
func (s *Server) Close() error {
	for _, c := range s.beginClose() {
		c.abort()
	}
	<-s.drained
	s.stop()
	return nil
}

// stop stops the event loops and waits for all goroutines.
func (s *Server) stop() {
	s.mu.Lock()
	loops := s.loops
	already := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !already {
		for _, l := range loops {
			l.stop()
		}
	}
	// Goroutine-driver sockets may still linger after their OnClose.
	s.mu.Lock()
	var left []*Conn
	for c := range s.conns {
		left = append(left, c)
	}
	s.mu.Unlock()
	for _, c := range left {
		c.kill(nil)
	}
	s.wg.Wait()
}
