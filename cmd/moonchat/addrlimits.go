package main

import (
	"fmt"
	"math"
	"net/http"

	"github.com/moonchat/moonchat/core/addrlimit"
)

// The per-address limits and the reverse proxies of [server]
// (max_connections_per_address, handshake_rate, handshake_burst,
// limits_exempt, trusted_proxies, forwarded_header): checked by
// checkAddrLimits (validateConfig), built by addrLimits for chat.Config
// and the /api/login limit, which count addresses the same way
// (core/addrlimit).

// addrLimits builds chat.Config.AddrLimits and chat.Config.Proxies from
// [server]; the error names the key (validateConfig reports the same
// problems earlier, with the file).
func addrLimits(s *ServerConfig) (addrlimit.Config, addrlimit.Proxies, error) {
	exempt, err := addrlimit.ParsePrefixes(s.LimitsExempt)
	if err != nil {
		return addrlimit.Config{}, addrlimit.Proxies{}, fmt.Errorf("[server] limits_exempt: %w", err)
	}
	trusted, err := addrlimit.ParsePrefixes(s.TrustedProxies)
	if err != nil {
		return addrlimit.Config{}, addrlimit.Proxies{}, fmt.Errorf("[server] trusted_proxies: %w", err)
	}
	header, err := addrlimit.ParseHeader(s.ForwardedHeader)
	if err != nil {
		return addrlimit.Config{}, addrlimit.Proxies{}, fmt.Errorf("[server] forwarded_header: %w", err)
	}
	cfg := addrlimit.Config{
		MaxConns: s.MaxConnectionsPerAddress,
		Rate:     s.HandshakeRate,
		Burst:    s.HandshakeBurst,
		Exempt:   exempt,
	}
	if _, err := addrlimit.New(cfg); err != nil {
		return addrlimit.Config{}, addrlimit.Proxies{}, fmt.Errorf("[server] per-address limits: %w", err)
	}
	return cfg, addrlimit.NewProxies(trusted, header), nil
}

// checkAddrLimits reports the [server] per-address keys that cannot work.
func checkAddrLimits(s *ServerConfig, fail func(key, format string, args ...any)) {
	if s.MaxConnectionsPerAddress < 0 {
		fail("[server] max_connections_per_address", "must be 0 (no limit) or more, got %d", s.MaxConnectionsPerAddress)
	}
	if r := s.HandshakeRate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		fail("[server] handshake_rate", "must be 0 (no limit) or a positive number, got %v", r)
	}
	if s.HandshakeRate > 0 && s.HandshakeBurst < 1 {
		fail("[server] handshake_burst", "must be at least 1 when handshake_rate is set, got %d", s.HandshakeBurst)
	} else if s.HandshakeBurst < 0 {
		fail("[server] handshake_burst", "must not be negative, got %d", s.HandshakeBurst)
	}
	if _, err := addrlimit.ParsePrefixes(s.LimitsExempt); err != nil {
		fail("[server] limits_exempt", "%v", err)
	}
	if _, err := addrlimit.ParsePrefixes(s.TrustedProxies); err != nil {
		fail("[server] trusted_proxies", "%v", err)
	}
	if _, err := addrlimit.ParseHeader(s.ForwardedHeader); err != nil {
		fail("[server] forwarded_header", "%v", err)
	}
}

// clientAddr is r's client address for the scripts (the connect and login
// scripts' req.addr), as the chat server gives it to user.addr: through a
// trusted proxy, the address it forwarded ("host:port", port 0 when it
// gave none); else, or when it named none usable, the TCP peer.
func clientAddr(p addrlimit.Proxies, r *http.Request) string {
	a, via, err := p.ClientAddr(r.RemoteAddr, r.Header)
	if err != nil || !via {
		return r.RemoteAddr
	}
	return a.String()
}

// clientKey is the /api/login limit's key for r: its client address
// (through [server] trusted_proxies) as core/addrlimit counts it, the
// same definition as the WebSocket limits.
func clientKey(p addrlimit.Proxies, r *http.Request) string {
	a, _, err := p.ClientAddr(r.RemoteAddr, r.Header)
	if err != nil {
		return "unknown" // one shared bucket, as for the WebSocket limits
	}
	return addrlimit.KeyOf(a.Addr().String())
}
