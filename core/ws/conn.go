package ws

import (
	"sync"
	"sync/atomic"
)

// The Conn type, its state and its lifecycle: who owns what, the flags,
// teardown (kill, finalize, OnClose once) and the per-connection timers.
// The paths that act on a connection live beside it: read.go (input:
// decoding, control frames, pause/resume), write.go (output: the queue,
// direct and gathered writes, Prepared messages, backpressure) and
// close.go (the closing handshake and close codes, RFC 6455 section 7).

// Conn flags. They change only under Conn.mu; reads may be lock-free.
//
// Invariants: fFinal implies fDead (finalize sets both); fLinger implies
// fFlushClose (the write side is shut down only after the final flush);
// fReported is set once, before or at fFinal; PauseReading does not set
// fPaused once fSentClose is (the answer to our close frame must be read).
const (
	fHixie      uint32 = 1 << iota // hixie-76 framing
	fSentClose                     // our close frame is queued or sent: no more data frames
	fGotClose                      // the peer's close frame arrived
	fFlushClose                    // shut the write side down once the queue is flushed
	fLinger                        // write side shut down: discard input until EOF
	fDead                          // teardown requested: the owner will finalize
	fFinal                         // finalized: socket closed, OnClose called
	fPaused                        // PauseReading in effect
	fRegistered                    // in its event loop's epoll set
	fOutArmed                      // epoll: EPOLLOUT armed
	fInArmed                       // epoll: EPOLLIN armed
	fStarted                       // OnOpen has returned and the owner runs
	fReported                      // OnClose has been called
)

// Conn is one WebSocket connection. All methods are safe for concurrent use.
//
// Ownership: every Conn has one owner goroutine, its event loop (epoll
// driver) or its reader goroutine (fallback driver). Only the owner decodes
// input, calls the Handler, and finalizes (closes the socket, calls OnClose).
// Any goroutine may write; writes go straight to the socket when its queue
// is empty and are queued otherwise. Other goroutines that need the
// connection torn down set fDead and notify the owner (kill).
//
// Which file owns which field: the queue (q, qBytes, progress) and the
// header scratch whdr are write.go's; pending, dec and the keepalive clocks
// (lastRead, pingSent) are read.go's and tick's, except dec.z (the
// negotiated compression, immutable, read by the write path too); deadline and closeErr are
// close.go's. Exactly one of lp and fb is set, for the connection's life.
type Conn struct {
	srv   *Server
	lp    *loop   // epoll driver; nil with the fallback driver
	fb    *fbConn // fallback driver; nil with the epoll driver
	flags atomic.Uint32
	fd    int32 // epoll driver: the socket, -1 once closed (guarded by mu)
	mu    sync.Mutex

	// Guarded by mu.
	q        [][]byte // queued output; entries are copies or Prepared bytes
	qBytes   int      // bytes queued and not yet written (fallback: also those its writer took from q)
	progress int64    // when the queue last made progress (or became non-empty)
	deadline int64    // closing deadline (0: none)
	closeErr *CloseError
	userData any

	// Owner only.
	lastRead int64
	pingSent int64
	pending  []byte // input not yet decoded (bytes past a PauseReading, or left by the handshake)
	dec      decoder

	whdr [10]byte // header scratch for writes, guarded by mu (keeps it off the heap)

	sub  string
	addr string
}

// UserData returns the value given to Upgrade or SetUserData.
func (c *Conn) UserData() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userData
}

// SetUserData replaces the value returned by UserData.
func (c *Conn) SetUserData(v any) {
	c.mu.Lock()
	c.userData = v
	c.mu.Unlock()
}

// Subprotocol returns the negotiated subprotocol ("" when none).
func (c *Conn) Subprotocol() string { return c.sub }

// RemoteAddr returns the peer's address as host:port.
func (c *Conn) RemoteAddr() string { return c.addr }

// Compression reports whether permessage-deflate (RFC 7692) was
// negotiated: messages at least Config.CompressionThreshold long are then
// sent compressed, and the peer may send compressed messages.
func (c *Conn) Compression() bool { return c.dec.z != nil }

// Hixie76 reports whether the connection speaks the legacy hixie-76 draft.
func (c *Conn) Hixie76() bool { return c.flags.Load()&fHixie != 0 }

func (c *Conn) setFlagLocked(f uint32, on bool) {
	fl := c.flags.Load()
	if on {
		c.flags.Store(fl | f)
	} else {
		c.flags.Store(fl &^ f)
	}
}

// killLocked requests immediate teardown by the owner. ce is recorded unless
// an earlier cause is.
func (c *Conn) killLocked(ce *CloseError) {
	if c.closeErr == nil && ce != nil {
		c.closeErr = ce
	}
	if c.flags.Load()&fDead != 0 {
		return
	}
	c.setFlagLocked(fDead, true)
	c.q = nil
	c.qBytes = 0
	if c.lp != nil {
		if c.flags.Load()&fStarted != 0 {
			c.lp.post(c)
		}
	} else {
		c.fb.kill()
	}
}

func (c *Conn) kill(ce *CloseError) {
	c.mu.Lock()
	c.killLocked(ce)
	c.mu.Unlock()
}

// notifyOwner asks the owner to look at the connection again (pending input
// after ResumeReading, or teardown).
func (c *Conn) notifyOwner() {
	if c.lp != nil {
		if c.flags.Load()&fStarted != 0 {
			c.lp.post(c)
		}
	} else {
		c.fb.kick()
	}
}

// updateInterestLocked tells the driver what the connection waits for
// (with the goroutine driver: that its timers may be due sooner, see
// fbConn.timersChangedLocked).
func (c *Conn) updateInterestLocked() {
	if c.lp != nil {
		c.epUpdateInterestLocked()
	} else {
		c.fb.timersChangedLocked()
	}
}

// tick runs the connection's timers (on the owner goroutine): closing
// deadline, write progress, idle timeout and keepalive pings.
func (c *Conn) tick(now int64) {
	cfg := &c.srv.cfg
	c.mu.Lock()
	fl := c.flags.Load()
	if fl&fDead != 0 {
		c.mu.Unlock()
		return
	}
	if c.deadline != 0 && now >= c.deadline {
		c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "close timeout"})
		c.mu.Unlock()
		return
	}
	if c.qBytes > 0 && now-c.progress >= int64(cfg.WriteTimeout) {
		c.slowConsumerLocked("no write progress")
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if fl&fSentClose != 0 {
		return
	}
	if fl&fPaused != 0 {
		// The application holds reading back: silence is ours, not the
		// peer's. Count from now on once reading resumes.
		c.lastRead = now
		c.pingSent = 0
		return
	}
	if cfg.IdleTimeout > 0 && now-c.lastRead >= int64(cfg.IdleTimeout) {
		_ = c.Close(StatusGoingAway, "idle timeout")
		return
	}
	if cfg.PingInterval <= 0 || fl&fHixie != 0 {
		return
	}
	if c.pingSent > c.lastRead {
		if now-c.pingSent >= int64(cfg.PingTimeout) {
			c.kill(&CloseError{Code: StatusAbnormalClosure, Reason: "ping timeout"})
		}
		return
	}
	if now-max(c.lastRead, c.pingSent) >= int64(cfg.PingInterval) {
		c.pingSent = now
		_ = c.Ping(nil)
	}
}

// finalize ends the connection on the owner goroutine: the socket is
// closed exactly once, buffers are dropped, and OnClose is called unless it
// already was.
func (c *Conn) finalize() {
	c.mu.Lock()
	if c.flags.Load()&fFinal != 0 {
		c.mu.Unlock()
		return
	}
	c.setFlagLocked(fFinal|fDead, true)
	c.q = nil
	c.qBytes = 0
	if c.lp != nil {
		c.epCloseLocked()
	}
	c.mu.Unlock()
	if c.fb != nil {
		c.fb.close()
	}
	c.dec.fail()
	c.pending = nil
	c.report()
	c.srv.forget(c)
}

// report calls OnClose, once, on the owner goroutine. It happens at
// finalize, or earlier: as soon as our last frame is written and the write
// side shut down (fLinger), the WebSocket connection is over even though
// the socket lingers until the peer's FIN (or CloseTimeout), so that OnClose
// does not wait for a peer that keeps TCP open after the closing handshake.
func (c *Conn) report() {
	c.mu.Lock()
	if c.flags.Load()&fReported != 0 {
		c.mu.Unlock()
		return
	}
	c.setFlagLocked(fReported, true)
	ce := c.closeErr
	if ce == nil {
		ce = &CloseError{Code: StatusAbnormalClosure}
		c.closeErr = ce
	}
	c.mu.Unlock()
	c.srv.reporting()
	c.srv.h.OnClose(c, ce)
	c.srv.reported()
}

// maybeReport reports a lingering connection (owner only).
func (c *Conn) maybeReport() {
	if c.flags.Load()&(fLinger|fReported) == fLinger {
		c.report()
	}
}
