// Package ws is moonchat's WebSocket engine: RFC 6455 (and, opt-in, the
// legacy hixie-76 draft) on top of net/http.
//
// A Server upgrades HTTP requests (hijacking the connection, so one port
// serves pages, APIs and WebSockets) and then drives every connection from a
// small number of event loops: on Linux, epoll loops that own the sockets'
// file descriptors (no goroutine per connection, see epoll_linux.go);
// elsewhere, and for connections that are not plain TCP (TLS), a reader
// goroutine per connection and a writer goroutine while output is queued
// (fallback.go, which says why TLS is served there). Either way a Handler
// receives OnOpen, OnMessage and OnClose, serialised per connection.
//
// Dial is the client side (dial.go, client.go): the opening handshake of
// section 4.1 (Sec-WebSocket-Key and Accept, subprotocols, extra headers
// such as Authorization, bounded by a context), then a ClientConn read
// and written by the caller's goroutines. It shares the server's frame
// decoder in its client role (server frames must not be masked; UTF-8,
// close codes and limits as below) and masks every frame it sends. With
// DialOptions.Compression it offers permessage-deflate the way the server
// side negotiates it (no context takeover either way).
//
// # Files
//
// One concern per file; each states the invariants of the data it owns.
//
//   - conn.go: the Conn type, its ownership rules and flags, teardown
//     (kill, finalize, OnClose exactly once) and the per-connection timers
//     (idle timeout, keepalive pings, write progress, closing deadline).
//   - read.go: the receive path: decoding input on the owner goroutine,
//     data messages to the Handler, pings answered, PauseReading and
//     ResumeReading.
//   - write.go: the send path: direct writes, the queue and its bound
//     (MaxQueueBytes, slow consumers), gathered writes of Prepared
//     messages (WritePreparedBatch), Ping.
//   - close.go: the closing handshake (RFC 6455 section 7) for both our
//     close and the peer's, protocol errors (7.1.7), close codes (7.4),
//     CloseError and close frame bodies.
//   - frame.go: opcodes and the frame header (section 5.2); decoder.go:
//     the push-style frame parser both sides share; prepared.go: messages
//     framed once for many connections; deflate.go: permessage-deflate
//     (RFC 7692) negotiation, compression and bounded inflation;
//     prepared_deflate.go: Prepared messages compressed once.
//   - server.go (Upgrade, Shutdown), handshake.go, host.go, hixie76.go:
//     the opening handshake and its checks; config.go: Config.
//   - epoll_linux.go, fallback.go: the two drivers that own a connection's
//     socket and call the paths above.
//   - dial.go, client.go: the client side (above).
//
// # Protocol decisions
//
//   - Payload lengths must use the minimal encoding (RFC 6455 section 5.2,
//     "the minimal number of bytes MUST be used"); a non-minimal one fails
//     the connection with 1002. A 64-bit length with its top bit set is 1002.
//   - Close codes accepted on the wire: 1000-1003, 1007-1014 (1012-1014 are
//     registered with IANA) and 3000-4999. 0-999, 1004-1006, 1015-2999 and
//     5000+ fail with 1002 (Autobahn 7.7.x, 7.9.x, 7.13.x).
//   - Text is validated as bytes arrive: 1007 at the first byte that can no
//     longer be valid UTF-8, even mid-frame. Limits are checked on frame
//     headers: 1009 before a too-large payload is read.
//   - permessage-deflate (RFC 7692, deflate.go) is negotiated when
//     Config.Compression is on and the client offers it, always with
//     server_no_context_takeover and client_no_context_takeover: every
//     message is compressed on its own, so a broadcast is compressed once
//     for all members (prepared_deflate.go) and an idle connection holds no
//     compression state. RSV1 is accepted only on the first frame of a
//     message on such a connection; any other RSV bit is 1002. A compressed
//     message that inflates past MaxMessageBytes is 1009, stopped as the
//     output passes the bound.
//   - Closing (section 7): the server echoes the peer's close and closes TCP
//     first; when it starts the handshake it waits up to CloseTimeout for the
//     reply. After its last frame it shuts down the write side and reads and
//     discards input until the peer's FIN (bounded by CloseTimeout) so that
//     unread input cannot turn the close into a reset that destroys the close
//     frame in flight. OnClose does not wait for that linger.
//   - After a protocol error the close frame (1002/1007/1009) is sent and no
//     further input is processed.
//   - MaxQueueBytes bounds output queued behind other queued output: one
//     message larger than the bound still goes to a peer that reads. A slow
//     consumer is dropped without a close frame (its socket is full); the
//     Handler sees 1008 "slow consumer".
//   - Opening handshake checks, in order: the request itself (400, 426),
//     then Host (421 Misdirected Request unless it is a loopback name, the
//     IP address the request arrived on or in Config.Hosts: DNS-rebinding
//     protection, see HostPolicy), then Origin (403; by default the Origin
//     must be the very site the request was sent to, scheme included —
//     section 10.2). The Host check comes first because an origin check
//     that compares Origin with an unchecked Host proves nothing.
//
// The package knows nothing about chat; package core/chat builds on it.
package ws
