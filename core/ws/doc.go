// Package ws is moonchat's WebSocket engine: RFC 6455 (and, opt-in, the
// legacy hixie-76 draft) on top of net/http.
//
// A Server upgrades HTTP requests (hijacking the connection, so one port
// serves pages, APIs and WebSockets) and then drives every connection from a
// small number of event loops: on Linux, epoll loops that own the sockets'
// file descriptors (no goroutine per connection); elsewhere, and for
// connections that are not plain TCP (TLS), a reader and a writer goroutine
// per connection. Either way, a Handler receives OnOpen, OnMessage and
// OnClose events, serialised per connection.
//
// The package knows nothing about chat; package core/chat builds on it.
package ws
