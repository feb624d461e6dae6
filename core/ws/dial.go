package ws

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The client side of the opening handshake, RFC 6455 section 4.1. Dial
// writes the upgrade request itself (no http.Client: one buffered write and
// one bufio.Reader per connection, which is what a load generator with tens
// of thousands of connections can afford) and checks the answer as section
// 4.1 requires before any frame is read.

// ErrBadHandshake means the server's answer to the upgrade request is not a
// valid RFC 6455 handshake response (section 4.1): not 101, no
// Upgrade/Connection tokens, a wrong Sec-WebSocket-Accept, or a subprotocol
// or extension that was not offered.
var ErrBadHandshake = errors.New("websocket: bad handshake")

// DialOptions tunes Dial. A nil *DialOptions is the zero value, which works.
type DialOptions struct {
	// HTTPHeader holds extra request headers: Authorization, Origin,
	// Cookie, ... The headers of the handshake itself (Host, Upgrade,
	// Connection, Sec-WebSocket-*) are Dial's and refused here.
	HTTPHeader http.Header
	// Subprotocols are offered in Sec-WebSocket-Protocol, in order of
	// preference; the server picks one or none (ClientConn.Subprotocol).
	Subprotocols []string
	// NetDialContext opens the TCP connection (default: a zero
	// net.Dialer's DialContext). Set it to bind a source address or set
	// socket options.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is used for wss:// URLs (default: a zero tls.Config);
	// ServerName defaults to the URL's host name.
	TLSConfig *tls.Config
	// MaxMessageBytes bounds one received message (0 → 64 MiB, as the
	// server's default); a larger one fails the connection with 1009.
	MaxMessageBytes int64
	// ReadBufferSize is the size of the read buffer (0 → 4096).
	ReadBufferSize int
	// CloseTimeout bounds how long Close, and ReadMessage after the
	// server's close frame, wait for the server's side of the closing
	// handshake (0 → 5s).
	CloseTimeout time.Duration
	// Compression offers permessage-deflate (RFC 7692) with both
	// no_context_takeover parameters, as the server side negotiates it
	// (deflate.go): if the server accepts, messages of at least
	// CompressionThreshold bytes are sent compressed (when that makes
	// them smaller) and compressed messages are read.
	Compression bool
	// CompressionThreshold: as Config.CompressionThreshold (0 → 64,
	// negative: every message).
	CompressionThreshold int
}

// Dial opens a WebSocket connection to rawURL (ws://, wss://; http:// and
// https:// are taken as their WebSocket counterparts) and performs the
// opening handshake of RFC 6455 section 4.1. ctx bounds the dial and the
// handshake, not the connection's later life.
//
// The response is returned whenever the server answered, also on failure
// (a refusal's status, headers and up to 1 KiB of its body), so that a
// caller can tell a 403 from a 503. Its Body must not be read after a
// successful dial: the stream belongs to the ClientConn.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*ClientConn, *http.Response, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: dial: %w", err)
	}
	var secure bool
	switch u.Scheme {
	case "ws", "http":
	case "wss", "https":
		secure = true
	default:
		return nil, nil, fmt.Errorf("websocket: dial %q: scheme must be ws or wss", rawURL)
	}
	if u.Host == "" {
		return nil, nil, fmt.Errorf("websocket: dial %q: no host", rawURL)
	}
	if err := checkRequestHeader(o.HTTPHeader); err != nil {
		return nil, nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if secure {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	dial := o.NetDialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: dial %s: %w", addr, err)
	}
	// Bound the handshake by ctx: its deadline, and its cancellation,
	// which makes the blocked read or write return at once.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	tcp := nc // the TCP connection, also under TLS (nc changes below)
	stop := context.AfterFunc(ctx, func() { _ = tcp.SetDeadline(time.Unix(1, 0)) })
	if secure {
		cfg := &tls.Config{}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			nc.Close()
			return nil, nil, fmt.Errorf("websocket: dial %s: tls: %w", addr, err)
		}
		nc = tc
	}
	c, resp, err := clientHandshake(nc, u, &o)
	if !stop() && err == nil {
		// ctx ended while the handshake finished: the deadline may be
		// set at any moment, so the connection cannot be handed out.
		err = context.Cause(ctx)
	}
	if err != nil {
		nc.Close()
		if cerr := context.Cause(ctx); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, resp, fmt.Errorf("websocket: dial %s: %w", rawURL, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, resp, nil
}

// handshakeHeaders are the request headers Dial writes itself.
var handshakeHeaders = []string{"Host", "Upgrade", "Connection", "Sec-Websocket-Key",
	"Sec-Websocket-Version", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions"}

// checkRequestHeader refuses extra headers that would clash with the
// handshake's own, and values that would split the request (CR, LF, NUL).
func checkRequestHeader(h http.Header) error {
	for k, vs := range h {
		for _, own := range handshakeHeaders {
			if strings.EqualFold(k, own) {
				return fmt.Errorf("websocket: dial: header %s is set by Dial (use DialOptions.Subprotocols for the protocol)", own)
			}
		}
		if strings.ContainsAny(k, "\r\n\x00: ") || k == "" {
			return fmt.Errorf("websocket: dial: bad header name %q", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("websocket: dial: header %s: value contains CR, LF or NUL", k)
			}
		}
	}
	return nil
}

// clientHandshake sends the upgrade request on nc and checks the answer
// (section 4.1, "the client MUST validate the server's response").
func clientHandshake(nc net.Conn, u *url.URL, o *DialOptions) (*ClientConn, *http.Response, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(raw[:])

	var b bytes.Buffer
	b.WriteString("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n")
	if len(o.Subprotocols) > 0 {
		b.WriteString("Sec-WebSocket-Protocol: " + strings.Join(o.Subprotocols, ", ") + "\r\n")
	}
	if o.Compression {
		b.WriteString("Sec-WebSocket-Extensions: " + clientDeflateOffer + "\r\n")
	}
	_ = o.HTTPHeader.Write(&b)
	b.WriteString("\r\n")
	if _, err := nc.Write(b.Bytes()); err != nil {
		return nil, nil, fmt.Errorf("send handshake: %w", err)
	}

	size := o.ReadBufferSize
	if size <= 0 {
		size = 4096
	}
	br := bufio.NewReaderSize(nc, size)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, nil, fmt.Errorf("read handshake response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Keep a little of the refusal for the caller (it often says why).
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil, resp, fmt.Errorf("%w: status %s", ErrBadHandshake, resp.Status)
	}
	// A 101 has no body: what follows is the WebSocket stream, in br.
	resp.Body = http.NoBody
	if !headerHasToken(resp.Header, "Upgrade", "websocket") {
		return nil, resp, fmt.Errorf("%w: no Upgrade: websocket", ErrBadHandshake)
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return nil, resp, fmt.Errorf("%w: no Connection: Upgrade", ErrBadHandshake)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), AcceptKey(key); got != want {
		return nil, resp, fmt.Errorf("%w: Sec-WebSocket-Accept %q, want %q", ErrBadHandshake, got, want)
	}
	sub := resp.Header.Get("Sec-WebSocket-Protocol")
	if sub != "" && !offered(o.Subprotocols, sub) {
		return nil, resp, fmt.Errorf("%w: server chose subprotocol %q, which was not offered", ErrBadHandshake, sub)
	}
	var z *deflateParams
	if exts := resp.Header.Values("Sec-WebSocket-Extensions"); len(exts) > 0 {
		if !o.Compression {
			return nil, resp, fmt.Errorf("%w: server chose extension %q, which was not offered", ErrBadHandshake, strings.Join(exts, ", "))
		}
		var err error
		if z, err = acceptDeflateResponse(exts, o.CompressionThreshold); err != nil {
			return nil, resp, fmt.Errorf("%w: %w", ErrBadHandshake, err)
		}
	}
	c := newClientConn(nc, br, sub, o)
	c.dec.z = z
	return c, resp, nil
}

// offered reports whether the server's choice is one of the client's
// offers (section 4.1: otherwise the client MUST fail the connection).
func offered(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
