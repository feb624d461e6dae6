package ws

import (
	"errors"
	"fmt"
)

// The send path of a server connection. Any goroutine may write. A write
// goes straight to the socket, from the writer's goroutine, when nothing is
// queued (epoll driver: writeDirectLocked, writevDirectLocked in
// epoll_linux.go); what the socket does not take is queued and written by
// the driver when the socket is writable again (epFlush, or the fallback's
// writer goroutine). Prepared messages (prepared.go) are queued by
// reference, everything else as a copy, so no write ever blocks.
//
// Invariants of the data write.go owns (all guarded by mu):
//   - Bytes reach the socket in the order of the writes: a write goes
//     direct only when qBytes is 0, otherwise behind the queue.
//   - q's entries are copies the queue owns or Prepared bytes, which are
//     immutable, so queued bytes never change. qBytes counts what is queued
//     and not yet written; an idle connection's q is nil (no buffer held).
//   - progress is when the queue last shrank or became non-empty; tick
//     drops a connection whose queue made no progress for WriteTimeout.
//   - Backpressure: output queued behind other queued output is bounded
//     by MaxQueueBytes; past it the peer is a slow consumer and the
//     connection is torn down (no close frame: its socket is full).
//   - Our close frame is the last frame we send (section 5.5.1): once
//     fSentClose is set every write fails with ErrClosed. Once fDead is
//     set, so does every write, and the queue is dropped.
//   - whdr is the header scratch of the frame being sent under mu, so that
//     framing a message allocates nothing when the socket takes it at once.

var (
	// ErrSlowConsumer is returned when the write queue exceeded MaxQueueBytes
	// or made no progress for WriteTimeout; the engine has closed the
	// connection (1008 "slow consumer") and logged it.
	ErrSlowConsumer = errors.New("websocket: slow consumer")

	// errBadOpcode is returned by WriteMessage for anything but text or binary.
	errBadOpcode = errors.New("websocket: WriteMessage takes OpText or OpBinary")

	// errHixieBinary is returned when binary data is written to a hixie-76
	// connection, whose framing carries text only.
	errHixieBinary = errors.New("websocket: hixie-76 connections carry text only")
)

// Buffered returns the number of bytes queued and not yet written.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qBytes
}

// WriteMessage sends one data message (OpText or OpBinary) as a single
// frame, compressed when permessage-deflate was negotiated and the message
// is long enough (Config.CompressionThreshold). It never blocks: bytes the
// socket does not take at once are copied into the connection's queue.
// When the queue would exceed MaxQueueBytes the connection is closed and
// ErrSlowConsumer returned.
func (c *Conn) WriteMessage(op Opcode, data []byte) error {
	if op != OpText && op != OpBinary {
		return errBadOpcode
	}
	if c.Hixie76() && op != OpText {
		return errHixieBinary
	}
	if z := c.dec.z; z != nil && z.wants(len(data)) {
		return c.writeCompressed(op, data)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendFrameLocked(op, data, false)
}

// writeCompressed sends data compressed (RFC 7692 section 7.2.1) in one
// frame with RSV1 set, or uncompressed when compression does not make it
// smaller. It compresses before taking mu, so that other writers do not
// wait for DEFLATE; with no context takeover the order of compression and
// sending does not matter.
func (c *Conn) writeCompressed(op Opcode, data []byte) error {
	fp := &c.srv.pool.z
	d := fp.getDeflater()
	defer fp.putDeflater(d)
	z, ok := d.compress(d.out.b[:0], data)
	d.out.b = z // keep the buffer in the pooled deflater
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		return c.sendFrameLocked(op, data, false)
	}
	n := putHeader(c.whdr[:], op, len(z))
	c.whdr[0] |= rsv1Bit
	// Not noCopy: what the socket does not take is copied, since z goes
	// back to the pool.
	return c.sendLocked(c.whdr[:n], z, nil, false, false)
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
// instead of copying them, which is why a Prepared is immutable. On a
// connection with permessage-deflate they are p's compressed frames,
// compressed once for every connection with the same parameters
// (prepared_deflate.go).
func (c *Conn) WritePrepared(p *Prepared) error {
	if c.Hixie76() {
		b, err := p.hixieFrames()
		if err != nil {
			return err
		}
		return c.send(nil, b, nil, true, false)
	}
	return c.send(nil, p.framesFor(c.dec.z, &c.srv.pool.z), nil, true, false)
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
				iov[k] = ps[k].framesFor(c.dec.z, &c.srv.pool.z)
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
			c.writeFailedLocked(err)
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
		return c.queueFullLocked(rest)
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
	c.queuedLocked(rest)
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
			c.writeFailedLocked(err)
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
	// The same bound as sendLocked's.
	if c.qBytes > 0 && c.qBytes+rest > c.srv.cfg.MaxQueueBytes {
		return c.queueFullLocked(rest)
	}
	if c.qBytes == 0 {
		c.progress = c.srv.now()
	}
	for _, b := range bufs {
		if len(b) > 0 {
			c.q = append(c.q, b)
		}
	}
	c.queuedLocked(rest)
	return nil
}

// queuedLocked accounts for rest bytes just appended to the queue and has
// the driver write them when the socket takes them. It calls
// epUpdateInterestLocked itself (updateInterestLocked tests c.lp again),
// which keeps it small enough to be inlined into the send path.
func (c *Conn) queuedLocked(rest int) {
	c.qBytes += rest
	if c.lp != nil {
		c.epUpdateInterestLocked()
	} else {
		c.fb.wakeWriter()
	}
}

// queueFullLocked drops a connection whose queue cannot take rest more
// bytes (the MaxQueueBytes bound) and returns ErrSlowConsumer.
func (c *Conn) queueFullLocked(rest int) error {
	c.slowConsumerLocked(fmt.Sprintf("queue full (%d bytes queued, %d more)", c.qBytes, rest))
	return ErrSlowConsumer
}

// writeFailedLocked tears down a connection whose socket refused a write
// (any error but EAGAIN/EINTR): the peer is gone, 1006 (section 7.1.5).
func (c *Conn) writeFailedLocked(err error) {
	c.killLocked(&CloseError{Code: StatusAbnormalClosure, Reason: "write: " + err.Error()})
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

// slowConsumerLocked tears down a connection whose peer does not read.
func (c *Conn) slowConsumerLocked(why string) {
	c.srv.log.Warn("websocket: closing slow consumer", "remote", c.addr, "queued", c.qBytes, "reason", why)
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: StatusPolicyViolation, Reason: "slow consumer"}
	}
	c.killLocked(nil)
}
