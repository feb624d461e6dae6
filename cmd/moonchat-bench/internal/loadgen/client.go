package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/moonchat/moonchat/core/ws"
)

// This file is a lean RFC 6455 client: just what a load generator needs,
// written for low overhead per connection (one bufio.Reader, one reused
// write buffer, no goroutine of its own). The opening handshake is
// core/ws's Dial; the frames after it are read and written here, because
// the epoll receive path below takes the socket out of the Go runtime and
// parses what one read returned for all its connections. It speaks to our
// server and to any other RFC 6455 server; it does not negotiate extensions.
//
// A Conn is read in one of two ways. ReadMessage pulls messages through the
// bufio.Reader, on whatever goroutine calls it (one per connection in a
// run: portable, but a wake-up and two read syscalls per small message).
// Or, on Linux, a readerPool takes the socket out of the Go runtime
// (detach) and pushes the bytes one epoll loop reads into feed (feed.go),
// which parses them in place: the receive path of a run with thousands of
// connections then costs one read per readiness for all the frames that
// arrived, and no goroutine per connection.

// Errors returned by the client.
var (
	// ErrBadHandshake means the server's answer to the upgrade request is
	// not a valid RFC 6455 handshake response (core/ws's Dial said so).
	ErrBadHandshake = ws.ErrBadHandshake
	// ErrProtocol means the server sent frames that break RFC 6455.
	ErrProtocol = errors.New("websocket: protocol error")
	// ErrMessageTooBig means a message exceeded DialOptions.MaxMessageBytes.
	ErrMessageTooBig = errors.New("websocket: message too big")
	// ErrConnClosed is returned by writes after Close.
	ErrConnClosed = errors.New("websocket: connection closed")
)

// CloseError is the close frame the server sent (RFC 6455 section 5.5.1);
// Code is 1005 when the frame carried no status.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "websocket: closed by the server: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// DialOptions tunes Dial. The zero value works.
type DialOptions struct {
	// Subprotocols offered in Sec-WebSocket-Protocol, in order of preference.
	Subprotocols []string
	// LocalAddr, when not nil, is the source IP the connection is bound to
	// (lets a load generator use several loopback addresses to get past
	// the ephemeral port range of one address).
	LocalAddr net.IP
	// ReadBufferSize is the size of the bufio.Reader (default 4096).
	ReadBufferSize int
	// MaxMessageBytes bounds a reassembled message (default 16 MiB).
	MaxMessageBytes int
	// Header holds extra request headers (Origin, for example).
	Header http.Header
	// TLSRoots verify a wss:// server's certificate (nil: the system's).
	TLSRoots *x509.CertPool
}

// Conn is a client WebSocket connection. ReadMessage must be called from
// one goroutine at a time; the write methods are safe for concurrent use
// with each other and with ReadMessage. Once an epoll reader owns the
// connection (readerPool.add), ReadMessage, SetReadDeadline and
// CloseHandshake must not be used any more.
type Conn struct {
	nc    net.Conn
	src   *restReader   // br's source: the handshake's read-ahead, then nc
	br    *bufio.Reader // made by the first ReadMessage; nil once detached
	rsize int           // br's size
	sub   string
	max   int

	// Reader state (owned by the ReadMessage caller, or the reader loop).
	msg      []byte // reassembled message / payload buffer
	ctl      [125]byte
	closeErr *CloseError

	// Push parser state (feed.go), owned by the reader loop: only an
	// incomplete frame or fragmented message keeps bytes here.
	pend []byte      // the incomplete frame's bytes, header included
	ph   frameHeader // pend's header once it is complete
	fop  ws.Opcode   // opcode of the fragmented message in progress, 0 if none
	fmsg []byte      // its fragments so far

	wmu    sync.Mutex
	wbuf   []byte // frames being written, masked in place
	wclose bool   // our close frame was sent
	// detached: the socket was taken out of the Go runtime; nc is closed
	// and fd is the socket, until the reader loop (its only closer) sets
	// it to -1. Both are guarded by wmu.
	detached bool
	fd       int
}

// Dial opens a WebSocket connection to rawURL (ws:// only): core/ws's Dial
// makes the connection and the RFC 6455 opening handshake (checking
// Sec-WebSocket-Accept, the subprotocol, the extensions), then hands the
// socket over (ws.ClientConn.Detach) with the bytes it read past the
// handshake, and this client reads and writes the frames itself.
func Dial(ctx context.Context, rawURL string, opts DialOptions) (*Conn, error) {
	if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("url %q: only ws:// and wss:// are supported", rawURL)
	}
	d := net.Dialer{Control: dialControl}
	if opts.LocalAddr != nil {
		d.LocalAddr = &net.TCPAddr{IP: opts.LocalAddr}
	}
	wc, _, err := ws.Dial(ctx, rawURL, &ws.DialOptions{
		HTTPHeader:     opts.Header,
		Subprotocols:   opts.Subprotocols,
		NetDialContext: d.DialContext,
		ReadBufferSize: opts.ReadBufferSize,
		TLSConfig:      &tls.Config{RootCAs: opts.TLSRoots},
	})
	if err != nil {
		return nil, err
	}
	nc, rest, err := wc.Detach()
	if err != nil { // cannot happen before the first read; fail closed
		_ = wc.Close(ws.StatusInternalError, "")
		return nil, fmt.Errorf("take over the connection: %w", err)
	}
	size := opts.ReadBufferSize
	if size <= 0 {
		size = 4096
	}
	maxMsg := opts.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = 16 << 20
	}
	// br is made by the first ReadMessage: a connection handed to an epoll
	// reader right away (the common case) never needs one.
	return &Conn{nc: nc, src: &restReader{rest: rest, nc: nc}, rsize: size, sub: wc.Subprotocol(), max: maxMsg, fd: -1}, nil
}

// restReader reads the bytes the handshake read past its response first,
// then the connection: the frames a server sends right after the 101
// (moonchat's welcome and replay) arrive in the same read as the
// handshake's answer.
type restReader struct {
	rest []byte
	nc   net.Conn
}

func (r *restReader) Read(p []byte) (int, error) {
	if len(r.rest) > 0 {
		n := copy(p, r.rest)
		r.rest = r.rest[n:]
		return n, nil
	}
	return r.nc.Read(p)
}

// readAhead returns the bytes read from the socket but not parsed yet:
// those in br, then those of the handshake that br has not taken yet.
func (c *Conn) readAhead() []byte {
	var b []byte
	if c.br != nil && c.br.Buffered() > 0 {
		p, _ := c.br.Peek(c.br.Buffered())
		b = append(b, p...)
	}
	if c.src != nil {
		b = append(b, c.src.rest...)
	}
	return b
}

// Subprotocol returns the subprotocol the server chose ("" when none).
func (c *Conn) Subprotocol() string { return c.sub }

// LocalAddr returns the local end of the TCP connection.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// SetReadDeadline sets the deadline of the underlying connection's reads.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// ReadMessage returns the next data message (ws.OpText or ws.OpBinary), with
// fragments reassembled (RFC 6455 section 5.4). Pings are answered with
// pongs and pongs ignored on the way. A close frame from the server is
// answered (section 5.5.1) and returned as a *CloseError. The returned
// bytes are valid until the next call.
func (c *Conn) ReadMessage() (ws.Opcode, []byte, error) {
	if c.closeErr != nil {
		return 0, nil, c.closeErr
	}
	if c.br == nil && c.src != nil {
		c.br = bufio.NewReaderSize(c.src, c.rsize)
	}
	var msgOp ws.Opcode
	c.msg = c.msg[:0]
	for {
		fin, op, n, err := c.readHeader()
		if err != nil {
			return 0, nil, err
		}
		if op >= ws.OpClose {
			if err := c.control(op, n); err != nil {
				return 0, nil, err
			}
			continue
		}
		switch {
		case op == ws.OpContinuation && msgOp == 0:
			return 0, nil, fmt.Errorf("%w: continuation frame without a message", ErrProtocol)
		case op != ws.OpContinuation && msgOp != 0:
			return 0, nil, fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol)
		case op != ws.OpContinuation && op != ws.OpText && op != ws.OpBinary:
			return 0, nil, fmt.Errorf("%w: reserved opcode %d", ErrProtocol, op)
		}
		if op != ws.OpContinuation {
			msgOp = op
		}
		if len(c.msg)+int(n) > c.max {
			return 0, nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooBig, c.max)
		}
		start := len(c.msg)
		c.msg = growLen(c.msg, start+int(n))
		if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
			return 0, nil, fmt.Errorf("read frame payload: %w", err)
		}
		if fin {
			return msgOp, c.msg, nil
		}
	}
}

// readHeader reads one frame header; server frames must not be masked
// (RFC 6455 section 5.1) and use no RSV bits (no extension negotiated).
func (c *Conn) readHeader() (fin bool, op ws.Opcode, n uint64, err error) {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return false, 0, 0, fmt.Errorf("read frame header: %w", err)
	}
	fin = h[0]&0x80 != 0
	if h[0]&0x70 != 0 {
		return false, 0, 0, fmt.Errorf("%w: RSV bits set", ErrProtocol)
	}
	op = ws.Opcode(h[0] & 0x0F)
	if h[1]&0x80 != 0 {
		return false, 0, 0, fmt.Errorf("%w: masked frame from the server", ErrProtocol)
	}
	n = uint64(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			return false, 0, 0, fmt.Errorf("read frame length: %w", err)
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, h[:8]); err != nil {
			return false, 0, 0, fmt.Errorf("read frame length: %w", err)
		}
		n = binary.BigEndian.Uint64(h[:8])
		if n > 1<<62 {
			return false, 0, 0, fmt.Errorf("%w: frame length %d", ErrProtocol, n)
		}
	}
	if op >= ws.OpClose && (!fin || n > 125) {
		return false, 0, 0, fmt.Errorf("%w: fragmented or long control frame", ErrProtocol)
	}
	if n > uint64(c.max) {
		return false, 0, 0, fmt.Errorf("%w: frame of %d bytes", ErrMessageTooBig, n)
	}
	return fin, op, n, nil
}

// control reads and handles a control frame of n bytes (n <= 125).
func (c *Conn) control(op ws.Opcode, n uint64) error {
	p := c.ctl[:n]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return fmt.Errorf("read control frame: %w", err)
	}
	return c.handleControl(op, p)
}

// handleControl acts on a control frame with payload p (both read paths):
// a ping is answered, a pong ignored, a close frame answered and returned
// as a *CloseError.
func (c *Conn) handleControl(op ws.Opcode, p []byte) error {
	n := len(p)
	switch op {
	case ws.OpPing:
		if err := c.writeFrames(ws.OpPong, p); err != nil && !errors.Is(err, ErrConnClosed) {
			return err
		}
		return nil
	case ws.OpPong:
		return nil
	case ws.OpClose:
		ce := &CloseError{Code: 1005}
		switch {
		case n == 1:
			return fmt.Errorf("%w: close frame of one byte", ErrProtocol)
		case n >= 2:
			ce.Code = int(binary.BigEndian.Uint16(p))
			if !utf8.Valid(p[2:]) {
				return fmt.Errorf("%w: close reason is not UTF-8", ErrProtocol)
			}
			ce.Reason = string(p[2:])
		}
		c.closeErr = ce
		// Echo the status code (RFC 6455 section 5.5.1), then the server
		// closes the TCP connection.
		reply := 1000
		if ce.Code != 1005 {
			reply = ce.Code
		}
		_ = c.sendClose(reply, "")
		return ce
	default:
		return fmt.Errorf("%w: reserved control opcode %d", ErrProtocol, op)
	}
}

// WriteText sends each of msgs as one text frame, all in one write.
func (c *Conn) WriteText(msgs ...[]byte) error { return c.writeFrames(ws.OpText, msgs...) }

// writeFrames encodes one masked frame per payload (RFC 6455 section 5.3,
// core/ws's client framing) into the reused buffer and writes them with one syscall.
func (c *Conn) writeFrames(op ws.Opcode, msgs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclose {
		return ErrConnClosed
	}
	b := c.wbuf[:0]
	for _, m := range msgs {
		b = ws.AppendClientFrame(b, op, m, ws.NewMaskKey())
	}
	c.wbuf = b
	if err := c.writeLocked(b, fdWriteTimeout); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// fdWriteTimeout bounds a write to a detached socket that makes no
// progress (the net.Conn path has no such bound, as before).
const fdWriteTimeout = 10 * time.Second

// writeLocked writes b whole to the socket; c.wmu is held. Writes to a
// detached socket wait for room with poll(2), for at most timeout.
func (c *Conn) writeLocked(b []byte, timeout time.Duration) error {
	if !c.detached {
		_, err := c.nc.Write(b)
		return err
	}
	if c.fd < 0 {
		return ErrConnClosed
	}
	return writeFD(c.fd, b, timeout)
}

// Close sends a close frame (1000) and closes the TCP connection without
// waiting for the server's answer. A detached connection's socket is shut
// down instead: its reader loop sees the end and closes it.
func (c *Conn) Close() error {
	_ = c.sendClose(1000, "")
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.detached {
		if c.fd >= 0 {
			_ = shutdownFD(c.fd)
		}
		return nil
	}
	return c.nc.Close()
}

// CloseHandshake sends a close frame with code and reason, then waits up
// to timeout for the server's close frame before closing the socket. It
// returns the server's close frame as a *CloseError when one came.
func (c *Conn) CloseHandshake(code int, reason string, timeout time.Duration) error {
	c.wmu.Lock()
	detached := c.detached
	c.wmu.Unlock()
	if detached {
		// The reader loop gets the server's answer; just send ours.
		err := c.sendClose(code, reason)
		_ = c.Close()
		return err
	}
	if err := c.sendClose(code, reason); err != nil {
		c.nc.Close()
		return err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var err error
	for {
		if _, _, err = c.ReadMessage(); err != nil {
			break
		}
	}
	c.nc.Close()
	return err
}

// closeWriteTimeout bounds the write of our close frame.
const closeWriteTimeout = 5 * time.Second

// sendClose sends our close frame once.
func (c *Conn) sendClose(code int, reason string) error {
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclose {
		return nil
	}
	c.wclose = true
	b := ws.AppendClientFrame(c.wbuf[:0], ws.OpClose, p, ws.NewMaskKey())
	c.wbuf = b
	if !c.detached {
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	}
	if err := c.writeLocked(b, closeWriteTimeout); err != nil {
		return fmt.Errorf("write close frame: %w", err)
	}
	return nil
}

// growLen returns b with length n, reallocating when needed.
func growLen(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}
