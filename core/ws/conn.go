package ws

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Conn flags. They change only under Conn.mu; reads may be lock-free.
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
type Conn struct {
	srv   *Server
	lp    *loop   // epoll driver; nil with the fallback driver
	fb    *fbConn // fallback driver; nil with the epoll driver
	flags atomic.Uint32
	fd    int32 // epoll driver: the socket, -1 once closed (guarded by mu)
	mu    sync.Mutex

	// Guarded by mu.
	q        [][]byte // queued output; entries are copies or Prepared bytes
	qBytes   int
	progress int64 // when the queue last made progress (or became non-empty)
	deadline int64 // closing deadline (0: none)
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

// errBadOpcode is returned by WriteMessage for anything but text or binary.
var errBadOpcode = errors.New("websocket: WriteMessage takes OpText or OpBinary")

// errHixieBinary is returned when binary data is written to a hixie-76
// connection, whose framing carries text only.
var errHixieBinary = errors.New("websocket: hixie-76 connections carry text only")

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

// Hixie76 reports whether the connection speaks the legacy hixie-76 draft.
func (c *Conn) Hixie76() bool { return c.flags.Load()&fHixie != 0 }

// Buffered returns the number of bytes queued and not yet written.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qBytes
}

// WriteMessage sends one data message (OpText or OpBinary) as a single
// frame. It never blocks: bytes the socket does not take at once are copied
// into the connection's queue. When the queue would exceed MaxQueueBytes
// the connection is closed and ErrSlowConsumer returned.
func (c *Conn) WriteMessage(op Opcode, data []byte) error {
	if op != OpText && op != OpBinary {
		return errBadOpcode
	}
	if c.Hixie76() && op != OpText {
		return errHixieBinary
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendFrameLocked(op, data, false)
}

// sendFrameLocked frames payload as op (RFC 6455, or hixie-76 text) with
// the header built in c.whdr, so that nothing escapes to the heap when the
// socket takes the frame at once.
func (c *Conn) sendFrameLocked(op Opcode, payload []byte, control bool) error {
	if c.flags.Load()&fHixie != 0 {
		c.whdr[0], c.whdr[1] = 0x00, 0xFF
		return c.sendLocked(c.whdr[:1], payload, c.whdr[1:2], false, control)
	}
	n := putHeader(c.whdr[:], op, len(payload))
	return c.sendLocked(c.whdr[:n], payload, nil, false, control)
}

// WritePrepared sends the messages of p. The queue refers to p's bytes
// instead of copying them, which is why a Prepared is immutable.
func (c *Conn) WritePrepared(p *Prepared) error {
	if c.Hixie76() {
		b, err := p.hixieFrames()
		if err != nil {
			return err
		}
		return c.send(nil, b, nil, true, false)
	}
	return c.send(nil, p.frames, nil, true, false)
}

// maxPreparedBatch bounds WritePreparedBatch's gather list kept on the
// stack; longer batches are written in several calls.
const maxPreparedBatch = 16

// WritePreparedBatch sends the messages of every Prepared in ps, in
// order, as if by one WritePrepared each, but with one gathered write
// (writev) where the socket takes it: a broadcaster that fell behind by
// several batches catches up with one system call per connection.
func (c *Conn) WritePreparedBatch(ps []*Prepared) error {
	for len(ps) > 0 {
		var iov [maxPreparedBatch][]byte
		k := 0
		for k < len(ps) && k < maxPreparedBatch {
			if c.Hixie76() {
				b, err := ps[k].hixieFrames()
				if err != nil {
					return err
				}
				iov[k] = b
			} else {
				iov[k] = ps[k].frames
			}
			k++
		}
		c.mu.Lock()
		err := c.sendVecLocked(iov[:k])
		c.mu.Unlock()
		if err != nil {
			return err
		}
		ps = ps[k:]
	}
	return nil
}

// Ping sends a ping with payload (at most 125 bytes). The peer's pong, like
// any other input, resets the keepalive timers. It is a no-op on hixie-76
// connections, which have no ping.
func (c *Conn) Ping(payload []byte) error {
	if len(payload) > maxControlPayload {
		return fmt.Errorf("websocket: ping payload of %d bytes exceeds 125", len(payload))
	}
	if c.Hixie76() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendFrameLocked(OpPing, payload, false)
}

// Close starts the closing handshake (RFC 6455 section 7.1.2): it queues a
// close frame with code and reason (after the data already queued), stops
// delivering messages, and waits up to CloseTimeout for the peer's close
// frame; the server then closes the TCP connection and OnClose follows. It
// returns ErrClosed when the connection is already closing.
func (c *Conn) Close(code StatusCode, reason string) error {
	if code != StatusNoStatusRcvd && !validWireCode(code) {
		return fmt.Errorf("websocket: close code %d may not be sent", code)
	}
	c.mu.Lock()
	fl := c.flags.Load()
	if fl&(fDead|fSentClose) != 0 {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: code, Reason: reason}
	}
	err := c.sendCloseLocked(code, reason)
	c.deadline = c.srv.now() + int64(c.srv.cfg.CloseTimeout)
	// The reply must be read even if the handler paused reading.
	c.setFlagLocked(fPaused, false)
	c.updateInterestLocked()
	c.mu.Unlock()
	c.notifyOwner()
	if errors.Is(err, ErrSlowConsumer) {
		return err
	}
	return nil
}

// PauseReading stops reading from the socket until ResumeReading (for
// backpressure). The message being delivered, if any, completes first; no
// OnMessage follows until ResumeReading.
func (c *Conn) PauseReading() {
	c.mu.Lock()
	if c.flags.Load()&fSentClose == 0 {
		c.setFlagLocked(fPaused, true)
		c.updateInterestLocked()
	}
	c.mu.Unlock()
}

// ResumeReading undoes PauseReading.
func (c *Conn) ResumeReading() {
	c.mu.Lock()
	wasPaused := c.flags.Load()&fPaused != 0
	c.setFlagLocked(fPaused, false)
	c.updateInterestLocked()
	c.mu.Unlock()
	if wasPaused {
		c.notifyOwner()
	}
}

func (c *Conn) setFlagLocked(f uint32, on bool) {
	fl := c.flags.Load()
	if on {
		c.flags.Store(fl | f)
	} else {
		c.flags.Store(fl &^ f)
	}
}

// send writes the concatenation of a, b and t (t is a small trailer, used by
// hixie-76 framing). With noCopy, b is immutable (Prepared) and may be
// queued by reference. control marks close/pong frames, which may still go
// out after our close frame has been queued.
func (c *Conn) send(a, b, t []byte, noCopy, control bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendLocked(a, b, t, noCopy, control)
}

func (c *Conn) sendLocked(a, b, t []byte, noCopy, control bool) error {
	fl := c.flags.Load()
	if fl&fDead != 0 || (fl&fSentClose != 0 && !control) {
		return ErrClosed
	}
	if c.lp != nil && c.qBytes == 0 {
		n, err := c.writeDirectLocked(a, b, t)
		if err != nil {
			c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "write: " + err.Error()})
			return ErrClosed
		}
		a, b, t = skip(a, b, t, n)
		if len(a)+len(b)+len(t) == 0 {
			return nil
		}
	}
	rest := len(a) + len(b) + len(t)
	// The bound applies to data queued behind other queued data: one
	// message larger than MaxQueueBytes still goes to a peer that reads
	// (the socket had taken everything before it), while a peer that
	// stops reading is caught at the next write or by WriteTimeout.
	if c.qBytes > 0 && c.qBytes+rest > c.srv.cfg.MaxQueueBytes {
		c.slowConsumerLocked(fmt.Sprintf("queue full (%d bytes queued, %d more)", c.qBytes, rest))
		return ErrSlowConsumer
	}
	if c.qBytes == 0 {
		c.progress = c.srv.now()
	}
	if noCopy {
		if len(a) > 0 {
			c.q = append(c.q, append([]byte(nil), a...))
		}
		c.q = append(c.q, b)
		if len(t) > 0 {
			c.q = append(c.q, append([]byte(nil), t...))
		}
	} else {
		buf := make([]byte, 0, rest)
		buf = append(append(append(buf, a...), b...), t...)
		c.q = append(c.q, buf)
	}
	c.qBytes += rest
	if c.lp != nil {
		c.updateInterestLocked()
	} else {
		c.fb.wakeWriter()
	}
	return nil
}

// sendVecLocked is sendLocked for a list of immutable (Prepared) buffers:
// written directly with one writev when nothing is queued, the rest queued
// by reference.
func (c *Conn) sendVecLocked(bufs [][]byte) error {
	fl := c.flags.Load()
	if fl&(fDead|fSentClose) != 0 {
		return ErrClosed
	}
	if c.lp != nil && c.qBytes == 0 {
		n, err := c.writevDirectLocked(bufs)
		if err != nil {
			c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "write: " + err.Error()})
			return ErrClosed
		}
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		bufs[0] = bufs[0][n:]
	}
	rest := 0
	for _, b := range bufs {
		rest += len(b)
	}
	if c.qBytes > 0 && c.qBytes+rest > c.srv.cfg.MaxQueueBytes {
		c.slowConsumerLocked(fmt.Sprintf("queue full (%d bytes queued, %d more)", c.qBytes, rest))
		return ErrSlowConsumer
	}
	if c.qBytes == 0 {
		c.progress = c.srv.now()
	}
	for _, b := range bufs {
		if len(b) > 0 {
			c.q = append(c.q, b)
		}
	}
	c.qBytes += rest
	if c.lp != nil {
		c.updateInterestLocked()
	} else {
		c.fb.wakeWriter()
	}
	return nil
}

// skip drops the first n bytes of the concatenation a|b|t.
func skip(a, b, t []byte, n int) ([]byte, []byte, []byte) {
	k := min(n, len(a))
	a, n = a[k:], n-k
	k = min(n, len(b))
	b, n = b[k:], n-k
	k = min(n, len(t))
	return a, b, t[k:]
}

// dequeueLocked drops n written bytes from the front of the queue.
func (c *Conn) dequeueLocked(n int) {
	c.qBytes -= n
	i := 0
	for n > 0 && i < len(c.q) {
		if n < len(c.q[i]) {
			c.q[i] = c.q[i][n:]
			break
		}
		n -= len(c.q[i])
		c.q[i] = nil
		i++
	}
	c.q = c.q[i:]
	if c.qBytes == 0 {
		c.q = nil // idle connections hold no buffers
	}
	c.progress = c.srv.now()
}

// sendCloseLocked queues our close frame and marks fSentClose.
func (c *Conn) sendCloseLocked(code StatusCode, reason string) error {
	var err error
	if c.flags.Load()&fHixie != 0 {
		c.whdr[0], c.whdr[1] = 0xFF, 0x00
		err = c.sendLocked(c.whdr[:2], nil, nil, false, true)
	} else {
		err = c.sendFrameLocked(OpClose, closePayload(code, reason), true)
	}
	c.setFlagLocked(fSentClose, true)
	return err
}

// closeAfterFlushLocked arranges for the TCP connection to end once the
// queue (ending with our close frame) is written: the write side is shut
// down (FIN) and input is discarded until the peer closes too, so that
// unread input cannot turn our close into a reset that destroys the close
// frame in flight. CloseTimeout bounds the whole thing.
func (c *Conn) closeAfterFlushLocked() {
	if c.flags.Load()&fFlushClose != 0 {
		return
	}
	c.setFlagLocked(fFlushClose, true)
	c.setFlagLocked(fPaused, false)
	c.deadline = c.srv.now() + int64(c.srv.cfg.CloseTimeout)
	if c.qBytes == 0 {
		c.shutdownWriteLocked()
	}
	c.updateInterestLocked()
}

// shutdownWriteLocked half-closes the socket after the final flush.
func (c *Conn) shutdownWriteLocked() {
	c.setFlagLocked(fLinger, true)
	if c.lp != nil {
		c.epShutdownWriteLocked()
	} else {
		c.fb.shutdownWrite()
	}
}

// slowConsumerLocked tears down a connection whose peer does not read.
func (c *Conn) slowConsumerLocked(why string) {
	c.srv.log.Warn("websocket: closing slow consumer", "remote", c.addr, "queued", c.qBytes, "reason", why)
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: StatusPolicyViolation, Reason: "slow consumer"}
	}
	c.killLocked(nil)
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

// updateInterestLocked tells the driver what the connection waits for.
func (c *Conn) updateInterestLocked() {
	if c.lp != nil {
		c.epUpdateInterestLocked()
	}
}

// --- owner side: decoding and the frameSink callbacks ---

// process decodes input on the owner goroutine. own tells whether p belongs
// to the connection (c.pending) rather than to a shared read buffer.
func (c *Conn) process(p []byte, own bool) {
	fl := c.flags.Load()
	if fl&(fDead|fLinger) != 0 {
		return
	}
	n, perr := c.dec.feed(p, c)
	if perr != nil {
		c.protocolError(perr)
		return
	}
	if n < len(p) && c.dec.state != decDone {
		if own {
			c.pending = p[n:]
		} else {
			c.pending = append([]byte(nil), p[n:]...)
		}
	} else if own {
		c.pending = nil
	}
}

// protocolError fails the connection (section 7.1.7): send a close frame
// with the error's code, then close TCP without reading further input.
func (c *Conn) protocolError(ce *CloseError) {
	c.srv.log.Debug("websocket: protocol error", "remote", c.addr, "code", int(ce.Code), "reason", ce.Reason)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr == nil {
		c.closeErr = ce
	}
	if c.flags.Load()&fSentClose == 0 {
		_ = c.sendCloseLocked(ce.Code, ce.Reason)
	}
	c.closeAfterFlushLocked()
}

func (c *Conn) onMessage(op Opcode, data []byte) bool {
	fl := c.flags.Load()
	if fl&(fSentClose|fDead) == 0 {
		c.srv.h.OnMessage(c, op, data)
	}
	return c.flags.Load()&(fPaused|fDead) == 0
}

func (c *Conn) onPing(payload []byte) bool {
	if c.flags.Load()&fSentClose == 0 {
		c.mu.Lock()
		_ = c.sendFrameLocked(OpPong, payload, false)
		c.mu.Unlock()
	}
	return c.flags.Load()&(fPaused|fDead) == 0
}

func (c *Conn) onPong([]byte) bool {
	return c.flags.Load()&(fPaused|fDead) == 0
}

// onClose handles the peer's close frame (section 5.5.1): echo it unless we
// started the handshake, then close TCP (the server closes first, 7.1.1).
func (c *Conn) onClose(code StatusCode, reason []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setFlagLocked(fGotClose, true)
	if c.flags.Load()&fSentClose == 0 {
		if c.closeErr == nil {
			c.closeErr = &CloseError{Code: code, Reason: string(reason)}
		}
		_ = c.sendCloseLocked(code, string(reason))
	}
	c.closeAfterFlushLocked()
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

// peerGone handles EOF or a read error on the owner goroutine.
func (c *Conn) peerGone(err error) {
	c.mu.Lock()
	if c.closeErr == nil {
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		c.closeErr = &CloseError{Code: StatusAbnormalClosure, Reason: reason}
	}
	c.mu.Unlock()
	c.finalize()
}
