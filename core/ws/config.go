package ws

import (
	"log/slog"
	"net/http"
	"time"
)

// Config tunes a Server. The zero value is usable.
type Config struct {
	// Subprotocols lists the supported subprotocols; the server picks the
	// FIRST of the client's list that it supports.
	Subprotocols []string
	// CheckOrigin guards against cross-site WebSocket hijacking. nil accepts
	// requests without an Origin header and those whose Origin is the site
	// they were sent to (SameOrigin: scheme, host and port). It runs after
	// the Host check (Hosts), which is what makes comparing Origin with the
	// client-supplied Host meaningful.
	CheckOrigin func(r *http.Request) bool
	// Hosts lists the Host header values the server answers to besides
	// localhost, 127.0.0.1, [::1] and the IP address a request arrived on
	// (HostPolicy describes the forms; "*" accepts any). Other upgrades are
	// refused with 421: DNS-rebinding protection.
	Hosts []string
	// MaxMessageBytes bounds one message (0 → 64 MiB); a larger one closes
	// the connection with 1009 without buffering it whole.
	MaxMessageBytes int64
	// HandshakeTimeout bounds the hixie-76 body read etc. (0 → 10s).
	HandshakeTimeout time.Duration
	// PingInterval pings a peer silent this long; 0 = no pings.
	PingInterval time.Duration
	// PingTimeout closes a connection when nothing arrives this long after a
	// ping (0 → 10s).
	PingTimeout time.Duration
	// IdleTimeout closes a peer silent this long; 0 = off.
	IdleTimeout time.Duration
	// WriteTimeout: a write queue making no progress this long is a slow
	// consumer (0 → 10s).
	WriteTimeout time.Duration
	// MaxQueueBytes bounds the bytes queued per connection (0 → 4 MiB).
	MaxQueueBytes int
	// CloseTimeout bounds the wait for the peer's close reply (0 → 5s).
	CloseTimeout time.Duration
	// Hixie76 accepts the legacy hixie-76 handshake and framing.
	Hixie76 bool
	// Compression negotiates permessage-deflate (RFC 7692) with clients
	// that offer it, as browsers do; off by default. The server answers
	// with server_no_context_takeover and client_no_context_takeover:
	// each message is compressed on its own, so a broadcast is compressed
	// once for every member (Prepared) and an idle connection holds no
	// compression state (deflate.go).
	Compression bool
	// CompressionThreshold is the size in bytes below which a message is
	// sent uncompressed even when compression was negotiated (0 → 64; a
	// negative value compresses every message). Whatever the threshold,
	// a message that compression would not make smaller goes
	// uncompressed.
	CompressionThreshold int
	// Logger receives the engine's logs; nil → slog.Default().
	Logger *slog.Logger
}

const (
	defaultMaxMessageBytes  = 64 << 20
	defaultHandshakeTimeout = 10 * time.Second
	defaultPingTimeout      = 10 * time.Second
	defaultWriteTimeout     = 10 * time.Second
	defaultMaxQueueBytes    = 4 << 20
	defaultCloseTimeout     = 5 * time.Second
)

// withDefaults returns cfg with zero values replaced by the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = defaultMaxMessageBytes
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = defaultPingTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = defaultMaxQueueBytes
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = defaultCloseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.CompressionThreshold == 0:
		cfg.CompressionThreshold = defaultCompressionThreshold
	case cfg.CompressionThreshold < 0:
		cfg.CompressionThreshold = 0
	}
	return cfg
}
