package ws

// The receive path of a server connection: input handed over by the
// driver (epoll_linux.go, fallback.go) is decoded by the connection's
// decoder (decoder.go), which calls back the frameSink methods below on the
// owner goroutine: data messages go to the Handler, pings are answered,
// close frames go to close.go. PauseReading and ResumeReading hold input
// back for the application's backpressure.
//
// Invariants of the data read.go owns (all owner-only, never under mu):
//   - pending holds input not yet decoded: bytes the handshake read past
//     its end, or the rest of a read that PauseReading interrupted. A
//     driver decodes it before anything it reads later, and it never
//     aliases the driver's shared read buffer (process copies what it
//     keeps of that).
//   - dec is fed only by process, so the decoder sees the bytes in the
//     order they arrived, once each. Nothing is decoded once fDead or
//     fLinger is set: after our last frame, input is discarded.
//   - OnMessage is not called once fSentClose or fDead is set. Every sink
//     method returns false once fPaused or fDead is set, which stops the
//     decoder right after the event (decoder.go's frameSink contract), and
//     the drivers do not feed input while fPaused is set.

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

// The decoder's sink (frameSink), on the owner goroutine. onClose, the
// peer's close frame, is in close.go.

func (c *Conn) onMessage(op Opcode, data []byte) bool {
	fl := c.flags.Load()
	if fl&(fSentClose|fDead) == 0 {
		c.srv.h.OnMessage(c, op, data)
	}
	return c.flags.Load()&(fPaused|fDead) == 0
}

// onPing answers a ping with a pong carrying the same payload (section
// 5.5.2), unless our close frame is out: nothing may follow it (5.5.1).
func (c *Conn) onPing(payload []byte) bool {
	if c.flags.Load()&fSentClose == 0 {
		c.mu.Lock()
		_ = c.sendFrameLocked(OpPong, payload, false)
		c.mu.Unlock()
	}
	return c.flags.Load()&(fPaused|fDead) == 0
}

// onPong needs nothing more: any input, a pong included, has already reset
// the keepalive clock (lastRead) in the driver.
func (c *Conn) onPong([]byte) bool {
	return c.flags.Load()&(fPaused|fDead) == 0
}
