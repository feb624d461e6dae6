package ws

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/moonchat/moonchat/core/ws/internal/mask"
)

// ClientConn is the client side of a WebSocket connection, made by Dial.
// Unlike the server's Conn, driven by event loops, it is read and written
// by the caller's goroutines: ReadMessage from one goroutine at a time;
// WriteMessage and Close from any, also concurrently with ReadMessage.
//
// Frames are read by the engine's decoder in its client role: server
// frames must not be masked (RFC 6455 section 5.1), payload lengths must be
// minimal, text must be UTF-8 (section 8.1), close codes valid (7.4); a
// violation fails the connection with the matching close code (1002, 1007,
// 1009), sent to the server. Every frame the client writes is masked with
// a fresh key (section 5.3).
type ClientConn struct {
	nc           net.Conn
	sub          string
	closeTimeout time.Duration

	// Reader state, owned by the goroutine holding rmu.
	rmu      sync.Mutex
	br       *bufio.Reader // the handshake's reader: may hold frames already
	dec      decoder
	pool     bufPool
	msgOp    Opcode
	msg      []byte
	got      bool        // the decoder delivered a message in this feed
	peer     *CloseError // the server's close frame, once received
	readErr  error       // sticky: how reading ended
	detached bool        // Detach handed the socket over

	// Writer state, guarded by wmu.
	wmu       sync.Mutex
	wbuf      []byte // the frame being written, masked in place
	closeSent bool   // our close frame went out (section 5.5.1: only one)
}

// errDetached is returned by every method after Detach.
var errDetached = errors.New("websocket: connection detached")

func newClientConn(nc net.Conn, br *bufio.Reader, sub string, o *DialOptions) *ClientConn {
	max := o.MaxMessageBytes
	if max <= 0 {
		max = defaultMaxMessageBytes
	}
	ct := o.CloseTimeout
	if ct <= 0 {
		ct = defaultCloseTimeout
	}
	c := &ClientConn{nc: nc, br: br, sub: sub, closeTimeout: ct}
	c.dec = newDecoder(max, false, &c.pool)
	c.dec.client = true
	return c
}

// Compression reports whether the server accepted permessage-deflate
// (DialOptions.Compression).
func (c *ClientConn) Compression() bool { return c.dec.z != nil }

// Subprotocol returns the subprotocol the server chose ("" when none).
func (c *ClientConn) Subprotocol() string { return c.sub }

// LocalAddr returns the local end of the TCP connection.
func (c *ClientConn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// ReadMessage returns the next data message (OpText or OpBinary), its
// fragments reassembled (section 5.4). Pings are answered with pongs on
// the way (section 5.5.2). The bytes are valid until the next call.
//
// When the server closes, ReadMessage answers its close frame (section
// 5.5.1), waits up to CloseTimeout for the server to close TCP first
// (section 7.1.1) and returns the server's code and reason as a
// *CloseError; every later call returns the same. A protocol violation
// returns a *CloseError with the code sent to the server (1002, 1007,
// 1009). If ctx ends first the connection is closed (a frame may have been
// half read) and ctx's error returned.
func (c *ClientConn) ReadMessage(ctx context.Context) (Opcode, []byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Unix(1, 0)) })
		defer func() {
			// ctx ended during the call: the deadline is (or is about to
			// be) in the past, so the connection cannot be read again.
			if !stop() && c.readErr == nil {
				c.nc.Close()
				c.readErr = fmt.Errorf("websocket: read: %w", context.Cause(ctx))
			}
		}()
	}
	c.got = false
	for {
		cerr, err := c.feedBuffered(c)
		switch {
		case err != nil:
			return 0, nil, c.endRead(ctx, err)
		case cerr != nil:
			// Fail the connection (section 7.1.7): our close frame
			// carries the reason, then TCP goes.
			_ = c.sendClose(cerr.Code, cerr.Reason)
			c.nc.Close()
			c.readErr = cerr
			return 0, nil, cerr
		case c.peer != nil:
			c.closed()
			return 0, nil, c.readErr
		case c.got:
			return c.msgOp, c.msg, nil
		}
	}
}

// feedBuffered hands the decoder the bytes the reader holds, reading from
// the connection first when it holds none, and drops what the decoder
// consumed; s receives the frames. err is the read error that ended the
// stream (nothing was decoded then), cerr the protocol violation that
// fails the connection. The caller holds rmu.
func (c *ClientConn) feedBuffered(s frameSink) (cerr *CloseError, err error) {
	if c.br.Buffered() == 0 {
		if _, err = c.br.Peek(1); err != nil {
			return nil, err
		}
	}
	p, _ := c.br.Peek(c.br.Buffered())
	var n int
	n, cerr = c.dec.feed(p, s)
	_, _ = c.br.Discard(n)
	return cerr, nil
}

// endRead records why reading stopped: ctx, or the stream ending without
// a close frame (1006, section 7.1.5).
func (c *ClientConn) endRead(ctx context.Context, err error) error {
	c.nc.Close()
	if cerr := context.Cause(ctx); cerr != nil {
		c.readErr = fmt.Errorf("websocket: read: %w", cerr)
		return c.readErr
	}
	reason := "connection closed without a close frame"
	if !errors.Is(err, io.EOF) {
		reason = err.Error()
	}
	c.readErr = &CloseError{Code: StatusAbnormalClosure, Reason: reason}
	return c.readErr
}

// closed finishes the closing handshake after the server's close frame:
// echo its code unless our own close frame already went out (section
// 5.5.1), then wait, bounded, for the server to close TCP first (section
// 7.1.1: the server closes first, so the TIME_WAIT state is its).
func (c *ClientConn) closed() {
	code := c.peer.Code
	if code == StatusNoStatusRcvd {
		code = StatusNormalClosure
	}
	_ = c.sendClose(code, "")
	_ = c.nc.SetReadDeadline(time.Now().Add(c.closeTimeout))
	_, _ = io.Copy(io.Discard, c.br)
	c.nc.Close()
	c.readErr = c.peer
}

// The decoder's sink (frameSink), on the reader's goroutine.

func (c *ClientConn) onMessage(op Opcode, data []byte) bool {
	// data is a slice of br's buffer or of the pool's buffer; neither is
	// touched again before the next ReadMessage, so no copy is needed.
	c.msgOp, c.msg, c.got = op, data, true
	return false
}

func (c *ClientConn) onPing(payload []byte) bool {
	// A failed pong shows up as a failed read or write later.
	_ = c.writeFrame(OpPong, payload)
	return true
}

func (c *ClientConn) onPong([]byte) bool { return true }

func (c *ClientConn) onClose(code StatusCode, reason []byte) {
	c.peer = &CloseError{Code: code, Reason: string(reason)}
}

// WriteMessage sends data as one final frame of op (OpText or OpBinary),
// masked (section 5.3). Text is sent as given: the caller makes it UTF-8.
// If ctx ends during the write the connection is closed (a frame may be
// half sent) and ctx's error returned.
func (c *ClientConn) WriteMessage(ctx context.Context, op Opcode, data []byte) error {
	if op != OpText && op != OpBinary {
		return errBadOpcode
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetWriteDeadline(time.Unix(1, 0)) })
		defer func() {
			if !stop() {
				c.nc.Close()
			}
		}()
	}
	if err := c.writeFrame(op, data); err != nil {
		if cerr := context.Cause(ctx); cerr != nil {
			return fmt.Errorf("websocket: write: %w", cerr)
		}
		return err
	}
	return nil
}

// writeFrame writes one final masked frame carrying payload, compressed
// (RSV1 set, RFC 7692 section 6) when permessage-deflate was negotiated and
// the data message is long enough and shrinks.
func (c *ClientConn) writeFrame(op Opcode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrClosed
	}
	if op == OpClose {
		c.closeSent = true
	}
	if z := c.dec.z; z != nil && !op.isControl() && z.wants(len(payload)) {
		d := c.pool.z.getDeflater()
		defer c.pool.z.putDeflater(d)
		if zp, ok := d.compress(d.out.b[:0], payload); ok {
			d.out.b = zp
			c.wbuf = AppendClientFrame(c.wbuf[:0], op, zp, NewMaskKey())
			c.wbuf[0] |= rsv1Bit
			if _, err := c.nc.Write(c.wbuf); err != nil {
				return fmt.Errorf("websocket: write: %w", err)
			}
			return nil
		}
	}
	c.wbuf = AppendClientFrame(c.wbuf[:0], op, payload, NewMaskKey())
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return fmt.Errorf("websocket: write: %w", err)
	}
	return nil
}

// AppendClientFrame appends to b one final frame of op carrying payload as
// a client must send it (RFC 6455 section 5.3): the MASK bit, key and the
// payload masked with key; the length uses the minimal encoding (section
// 5.2). key must be fresh for every frame: use NewMaskKey. It is for
// callers that write frames themselves after Detach; a ClientConn frames
// its writes with it.
func AppendClientFrame(b []byte, op Opcode, payload []byte, key [4]byte) []byte {
	var h [maxHeaderLen]byte
	n := putHeader(h[:], op, len(payload))
	h[1] |= maskBit
	b = append(b, h[:n]...)
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	mask.Apply(key, 0, b[start:])
	return b
}

// NewMaskKey returns a fresh masking key. The key only has to be
// unpredictable to the application (it defeats cache poisoning of
// proxies, section 10.3); math/rand/v2's per-thread ChaCha8 source is
// that, and costs no system call per frame.
func NewMaskKey() [4]byte {
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	return key
}

// sendClose sends our close frame, once.
func (c *ClientConn) sendClose(code StatusCode, reason string) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.closeTimeout))
	return c.writeFrame(OpClose, closePayload(code, reason))
}

// Close starts the closing handshake (section 7.1.2) with code and reason
// (StatusNoStatusRcvd for a close frame without a body; a code that may not
// be sent, section 7.4.1, is refused and nothing is sent) and closes the
// connection when the server has answered, or after CloseTimeout. It
// returns nil when the server answered with its close frame. Reads then
// return the server's answer as a *CloseError: when another goroutine is
// inside ReadMessage, that call gets it (Close only bounds its wait), and
// every later call does too.
func (c *ClientConn) Close(code StatusCode, reason string) error {
	if err := checkSendCode(code); err != nil {
		return err
	}
	if err := c.sendClose(code, reason); err != nil {
		c.nc.Close()
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		return err
	}
	if !c.rmu.TryLock() {
		// The reader reads the answer; make sure it cannot wait longer.
		_ = c.nc.SetReadDeadline(time.Now().Add(c.closeTimeout))
		return nil
	}
	defer c.rmu.Unlock()
	if c.readErr != nil {
		c.nc.Close()
		return nil
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.closeTimeout))
	for c.peer == nil {
		cerr, err := c.feedBuffered(discardSink{c})
		if err != nil {
			c.nc.Close()
			c.readErr = ErrClosed
			return fmt.Errorf("websocket: close: no close frame from the server: %w", err)
		}
		if cerr != nil {
			c.nc.Close()
			c.readErr = cerr
			return cerr
		}
	}
	c.closed() // later reads return the server's close frame, as a reader's would
	return nil
}

// discardSink is the sink while Close waits for the server's close frame:
// data that still arrives is dropped, pings are not answered any more
// (our close frame is out: section 5.5.1, nothing may follow it).
type discardSink struct{ c *ClientConn }

func (discardSink) onMessage(Opcode, []byte) bool            { return true }
func (discardSink) onPing([]byte) bool                       { return true }
func (discardSink) onPong([]byte) bool                       { return true }
func (s discardSink) onClose(code StatusCode, reason []byte) { s.c.onClose(code, reason) }

// Detach hands the connection over to a caller that speaks the protocol
// itself (the load generator's epoll readers): it returns the TCP (or TLS)
// connection and the bytes the handshake already read past the response,
// which belong before anything read from the connection next. A
// connection can be detached between messages (normally right after Dial),
// not inside one or after reading ended; the ClientConn must not be used
// afterwards.
func (c *ClientConn) Detach() (net.Conn, []byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.detached || c.readErr != nil || c.dec.state != decHeader || c.dec.hdrN != 0 {
		return nil, nil, errDetached
	}
	var rest []byte
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		rest = append([]byte(nil), b...)
	}
	c.detached = true
	c.readErr = errDetached
	c.br = nil
	return c.nc, rest, nil
}
