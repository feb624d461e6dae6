package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moonchat/moonchat/core/addrlimit"
)

// Per-address cap on the main port's plain HTTP connections (the page,
// /api/*, /metrics, and handshakes until they are upgraded). WebSockets are
// counted by core/chat once upgraded (max_connections_per_address, keyed by
// the client address through trusted_proxies); an HTTP connection could
// otherwise be held idle for httpIdleTimeout, as many as the process has
// file descriptors. This cap counts the TCP peer's address (IPv4, IPv6 /64:
// addrlimit.Key) from the moment net/http accepts a connection until it is
// closed or hijacked for a WebSocket, and allows max_connections_per_address
// of them (0 = no cap). It runs before any byte is read, so headers cannot
// name the client: the networks of limits_exempt and trusted_proxies (a
// proxy holds every client's connections) are exempt. A connection over
// the cap is closed at once, counted in moonchat_http_connections_refused_total
// and logged (sampled).

// Log sampling of connections closed over the cap.
const (
	connCapLogRate  = 5
	connCapLogBurst = 20
)

// connCap counts each address's HTTP connections through http.Server's
// ConnState hook.
type connCap struct {
	lim     *addrlimit.Limiter
	refused prometheus.Counter
	log     *slog.Logger
	sample  *addrlimit.Sampler

	mu     sync.Mutex
	leases map[net.Conn]addrlimit.Lease
}

// newConnCap returns the cap of [server] max_connections_per_address, or
// nil when that is 0 (no limit).
func newConnCap(s *ServerConfig, log *slog.Logger) (*connCap, error) {
	if s.MaxConnectionsPerAddress == 0 {
		return nil, nil
	}
	var exempt []netip.Prefix
	for key, list := range map[string][]string{"limits_exempt": s.LimitsExempt, "trusted_proxies": s.TrustedProxies} {
		p, err := addrlimit.ParsePrefixes(list)
		if err != nil {
			return nil, fmt.Errorf("[server] %s: %w", key, err)
		}
		exempt = append(exempt, p...)
	}
	lim, err := addrlimit.New(addrlimit.Config{MaxConns: s.MaxConnectionsPerAddress, Exempt: exempt})
	if err != nil {
		return nil, fmt.Errorf("[server] max_connections_per_address: %w", err)
	}
	return &connCap{
		lim: lim,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moonchat_http_connections_refused_total",
			Help: "Connections to the main port closed on accept because their address held [server] max_connections_per_address HTTP connections (not counting WebSockets) already.",
		}),
		log:    log,
		sample: addrlimit.NewSampler(connCapLogRate, connCapLogBurst),
		leases: make(map[net.Conn]addrlimit.Lease),
	}, nil
}

// connState is the http.Server's ConnState hook. net/http calls it for
// StateNew on its accept loop, before reading; the connection is counted
// until StateClosed or StateHijacked (a WebSocket: core/chat counts it
// from then on).
func (c *connCap) connState(nc net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		var ip netip.Addr
		if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
			ip = ap.Addr()
		}
		lease, no := c.lim.Admit(ip, time.Now())
		if no != nil {
			c.refused.Inc()
			if ok, n := c.sample.Allow(time.Now()); ok {
				c.log.Info("connection closed: too many HTTP connections from its address ([server] max_connections_per_address)", "remote", nc.RemoteAddr().String(), "suppressed", n)
			}
			_ = nc.Close() // net/http's read fails; StateClosed finds no lease
			return
		}
		c.mu.Lock()
		c.leases[nc] = lease
		c.mu.Unlock()
	case http.StateHijacked, http.StateClosed:
		c.mu.Lock()
		lease, ok := c.leases[nc]
		delete(c.leases, nc)
		c.mu.Unlock()
		if ok {
			lease.Release()
		}
	}
}
