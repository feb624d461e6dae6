package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/moonchat/moonchat/core/ws"
)

// The push parser of the epoll receive path: the reader loop hands feed
// whatever one read returned, and feed delivers the complete messages in
// it straight from that buffer. A connection keeps bytes of its own only
// across a read that ends inside a frame (pend) or inside a fragmented
// message (fmsg); most reads end on a frame boundary and leave nothing.
// It makes exactly the checks ReadMessage makes, in the same order, so
// both paths accept and refuse the same streams.

// errReaderStopped ends the connections a reader pool still held when it
// was stopped.
var errReaderStopped = errors.New("websocket: reader stopped")

// maxServerHeader is the longest header of an unmasked frame: 2 bytes and
// a 64-bit length (RFC 6455 section 5.2).
const maxServerHeader = 10

// frameHeader is a parsed, checked frame header; size 0 means none.
type frameHeader struct {
	size int // header bytes
	fin  bool
	op   ws.Opcode
	n    int // payload bytes
}

// feed parses p, the next bytes of the stream, calling deliver for every
// complete data message (fragments reassembled; data is valid only during
// the call). Control frames are handled on the way, as ReadMessage does. A
// non-nil error ends the connection: ErrProtocol, ErrMessageTooBig, a
// failed pong, or the server's close frame as a *CloseError (answered).
func (c *Conn) feed(p []byte, deliver func(op ws.Opcode, data []byte)) error {
	if c.closeErr != nil {
		return c.closeErr
	}
	for {
		if len(c.pend) > 0 {
			var err error
			if p, err = c.feedPending(p, deliver); err != nil {
				return err
			}
			if len(c.pend) > 0 {
				return nil // p is used up
			}
		}
		if len(p) == 0 {
			return nil
		}
		h, ok, err := c.parseHeader(p)
		if err != nil {
			return err
		}
		if !ok || len(p)-h.size < h.n {
			// The frame goes on in a later read: keep its start, in a
			// buffer with room for all of it.
			need := maxServerHeader
			if ok {
				need, c.ph = h.size+h.n, h
			}
			c.pend = append(make([]byte, 0, need), p...)
			return nil
		}
		if err := c.frame(h, p[h.size:h.size+h.n], deliver); err != nil {
			return err
		}
		p = p[h.size+h.n:]
	}
}

// feedPending completes the pending frame with the start of p, and returns
// the rest of p. When p is too short, it is all taken and pend grows.
func (c *Conn) feedPending(p []byte, deliver func(ws.Opcode, []byte)) ([]byte, error) {
	if c.ph.size == 0 {
		// The header itself is incomplete; a 10-byte prefix holds it.
		old := len(c.pend)
		take := min(len(p), maxServerHeader-old)
		c.pend = append(c.pend, p[:take]...)
		h, ok, err := c.parseHeader(c.pend)
		if err != nil {
			return nil, err
		}
		if !ok {
			return p[take:], nil
		}
		// Keep the header only; the payload is copied below.
		p = p[h.size-old:]
		c.ph = h
		hdr := c.pend[:h.size]
		c.pend = append(make([]byte, 0, h.size+h.n), hdr...)
	}
	need := c.ph.size + c.ph.n - len(c.pend)
	take := min(need, len(p))
	c.pend = append(c.pend, p[:take]...)
	p = p[take:]
	if take < need {
		return p, nil
	}
	h, f := c.ph, c.pend
	c.pend, c.ph = nil, frameHeader{}
	return p, c.frame(h, f[h.size:], deliver)
}

// parseHeader parses and checks the frame header at the start of b. ok is
// false when b does not hold all of it yet. The checks are readHeader's,
// plus the message-level ones ReadMessage makes after reading a header.
func (c *Conn) parseHeader(b []byte) (h frameHeader, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	h.fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return h, false, fmt.Errorf("%w: RSV bits set", ErrProtocol)
	}
	h.op = ws.Opcode(b[0] & 0x0F)
	if b[1]&0x80 != 0 {
		return h, false, fmt.Errorf("%w: masked frame from the server", ErrProtocol)
	}
	n, size := uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return h, false, nil
		}
		n, size = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return h, false, nil
		}
		n, size = binary.BigEndian.Uint64(b[2:10]), 10
		if n > 1<<62 {
			return h, false, fmt.Errorf("%w: frame length %d", ErrProtocol, n)
		}
	}
	if h.op >= ws.OpClose && (!h.fin || n > 125) {
		return h, false, fmt.Errorf("%w: fragmented or long control frame", ErrProtocol)
	}
	if n > uint64(c.max) {
		return h, false, fmt.Errorf("%w: frame of %d bytes", ErrMessageTooBig, n)
	}
	if h.op < ws.OpClose {
		switch {
		case h.op == ws.OpContinuation && c.fop == 0:
			return h, false, fmt.Errorf("%w: continuation frame without a message", ErrProtocol)
		case h.op != ws.OpContinuation && c.fop != 0:
			return h, false, fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol)
		case h.op != ws.OpContinuation && h.op != ws.OpText && h.op != ws.OpBinary:
			return h, false, fmt.Errorf("%w: reserved opcode %d", ErrProtocol, h.op)
		}
		if len(c.fmsg)+int(n) > c.max {
			return h, false, fmt.Errorf("%w: over %d bytes", ErrMessageTooBig, c.max)
		}
	}
	h.size, h.n = size, int(n)
	return h, true, nil
}

// frame acts on one complete frame whose header h was checked.
func (c *Conn) frame(h frameHeader, payload []byte, deliver func(ws.Opcode, []byte)) error {
	if h.op >= ws.OpClose {
		return c.handleControl(h.op, payload)
	}
	if h.fin && c.fop == 0 {
		deliver(h.op, payload) // the common case: no copy
		return nil
	}
	if h.op != ws.OpContinuation {
		c.fop = h.op
	}
	c.fmsg = append(c.fmsg, payload...)
	if !h.fin {
		return nil
	}
	op, msg := c.fop, c.fmsg
	c.fop, c.fmsg = 0, nil
	deliver(op, msg)
	return nil
}

// eofError is the error for the end of the stream: io.EOF between frames,
// io.ErrUnexpectedEOF inside one (as ReadMessage reports them).
func (c *Conn) eofError() error {
	if len(c.pend) > 0 || c.fop != 0 {
		return fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read frame header: %w", io.EOF)
}
