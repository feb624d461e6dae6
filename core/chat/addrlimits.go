package chat

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moonchat/moonchat/core/addrlimit"
)

// Admission of WebSocket handshakes, before the upgrade: who the client is
// (Config.Proxies), the per-address limits (Config.AddrLimits, 429), the
// global cap (Config.MaxConnections, 503) and the origin check (403, before
// the credentials are looked at). Refusals are cheap on purpose: a plain
// HTTP answer with a one-line reason and Retry-After, no upgrade, no
// member, no room; each is counted in moonchat_upgrades_refused_total and
// logged through one Sampler, so that an attacker refused a million times
// writes a few lines a second, not a million.

// retryFull is the Retry-After of a 503 "server full": when a slot frees up
// cannot be known; clients that come back sooner are refused cheaply.
const retryFull = 10 * time.Second

// Log sampling of refusals: a burst of refusalLogBurst lines, then
// refusalLogRate a second.
const (
	refusalLogRate  = 5
	refusalLogBurst = 20
)

// Reasons of moonchat_upgrades_refused_total.
const (
	refusedOrigin    = "origin"
	refusedAddrConns = "address_connections"
	refusedAddrRate  = "address_rate"
	refusedAddrTable = "address_table"
	refusedFull      = "server_full"
)

// limitMetrics are the admission series (registered by initLimits).
type limitMetrics struct {
	origin, addrConns, addrRate, addrTable, full counter
	// unknownClient counts handshakes whose trusted proxy named no usable
	// client address (they share one address's limits).
	unknownClient counter
	// suppressed counts refusal log lines left out by the sampler.
	suppressed counter
	// apiConns, apiRate, apiTable count /api/session, /api/history and
	// /api/rooms requests refused by the per-address limits (admitAPI).
	apiConns, apiRate, apiTable counter
}

// initLimits sets up the per-address limiter, the log sampler and their
// series in s's registry; New calls it after initMetrics.
func (s *Server) initLimits() error {
	lim, err := addrlimit.New(s.cfg.AddrLimits)
	if err != nil {
		return err
	}
	s.limits = lim
	s.refusalLog = addrlimit.NewSampler(refusalLogRate, refusalLogBurst)
	reg := s.metrics.reg
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_upgrades_refused_total",
		Help: "WebSocket handshakes refused before the upgrade, by reason (origin: 403; address_connections, address_rate, address_table: 429, per-address limits; server_full: 503, max_connections).",
	}, []string{"reason"})
	lm := &s.metrics.limits
	for _, c := range []struct {
		c      *counter
		reason string
	}{
		{&lm.origin, refusedOrigin}, {&lm.addrConns, refusedAddrConns}, {&lm.addrRate, refusedAddrRate},
		{&lm.addrTable, refusedAddrTable}, {&lm.full, refusedFull},
	} {
		*c.c = counter{refused.WithLabelValues(c.reason)}
	}
	unknown := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moonchat_client_address_unknown_total",
		Help: "WebSocket handshakes through a trusted proxy ([server] trusted_proxies) whose forwarding header named no usable client address; they share the limits of one address.",
	})
	suppressed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moonchat_log_suppressed_total",
		Help: "Log lines about refused requests (handshakes, the HTTP API, a Host not allowed, authentication, the admin token) left out by the log's rate limit; every refusal is counted in its own series.",
	})
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moonchat_limited_addresses",
		Help: "Client addresses the per-address limits track now.",
	}, func() float64 { return float64(lim.Tracked()) })
	apiRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_api_refused_total",
		Help: "Requests to /api/session, /api/history, /api/rooms and /api/direct refused with 429 by the per-address limits they share with WebSocket handshakes, by reason (address_connections, address_rate, address_table).",
	}, []string{"reason"})
	lm.apiConns = counter{apiRefused.WithLabelValues(refusedAddrConns)}
	lm.apiRate = counter{apiRefused.WithLabelValues(refusedAddrRate)}
	lm.apiTable = counter{apiRefused.WithLabelValues(refusedAddrTable)}
	for _, c := range []prometheus.Collector{refused, unknown, suppressed, tracked, apiRefused} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	lm.unknownClient, lm.suppressed = counter{unknown}, counter{suppressed}
	return nil
}

// clientAddr resolves r's client address (Config.Proxies); the invalid
// AddrPort when a trusted proxy named none usable (logged, counted: such
// clients share one address's limits and no exemption).
func (s *Server) clientAddr(r *http.Request) netip.AddrPort {
	a, _, err := s.cfg.Proxies.ClientAddr(r.RemoteAddr, r.Header)
	if errors.Is(err, addrlimit.ErrUnknownClient) {
		s.metrics.limits.unknownClient.Add(1)
		if ok, n := s.refusalLog.Allow(time.Now()); ok {
			s.log.Warn("chat: no usable client address from the proxy: limited as one unknown address", "remote", r.RemoteAddr, "header", s.cfg.Proxies.Header().String(), "suppressed", n)
		} else {
			s.metrics.limits.suppressed.Add(1)
		}
	}
	return a
}

// admit applies the per-address limits and the global cap to a handshake
// from client, before anything else is spent on it. On success the caller
// owns the returned Lease and one count in s.conns, and gives both back
// (release) when the connection closes or fails to open. On refusal the
// request has been answered: 429 or 503, Retry-After, a one-line reason.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, client netip.AddrPort) (addrlimit.Lease, bool) {
	lease, no := s.limits.Admit(client.Addr(), time.Now())
	if no != nil {
		switch no.Kind {
		case addrlimit.KindConns:
			s.metrics.limits.addrConns.Add(1)
		case addrlimit.KindRate:
			s.metrics.limits.addrRate.Add(1)
		default:
			s.metrics.limits.addrTable.Add(1)
		}
		s.refuseUpgrade(w, r, client, http.StatusTooManyRequests, no.Reason, no.RetryAfterSeconds())
		return addrlimit.Lease{}, false
	}
	if n := s.conns.Add(1); n > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		lease.Release()
		s.metrics.limits.full.Add(1)
		s.refuseUpgrade(w, r, client, http.StatusServiceUnavailable, "server full: try again later", (&addrlimit.Refusal{RetryAfter: retryFull}).RetryAfterSeconds())
		return addrlimit.Lease{}, false
	}
	return lease, true
}

// limitAPI serves an /api/session, /api/history, /api/rooms or /api/direct request
// with serve if its address is within the per-address limits: it counts
// as a handshake against handshake_rate and as a connection while it
// runs, with the handshakes' exemptions (limits_exempt). These requests
// ask the Authenticator, which runs the connect script on the Lua state
// the message hooks share, so a flood of them must be refused as cheaply
// as a flood of handshakes: 429, Retry-After, a JSON reason, logged
// (sampled) and counted in moonchat_api_refused_total.
func (s *Server) limitAPI(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request)) {
	client := s.clientAddr(r)
	lease, no := s.limits.Admit(client.Addr(), time.Now())
	if no == nil {
		defer lease.Release()
		serve(w, r)
		return
	}
	switch no.Kind {
	case addrlimit.KindConns:
		s.metrics.limits.apiConns.Add(1)
	case addrlimit.KindRate:
		s.metrics.limits.apiRate.Add(1)
	default:
		s.metrics.limits.apiTable.Add(1)
	}
	if ok, n := s.refusalLog.Allow(time.Now()); ok {
		s.log.Info("chat: API request refused", "status", http.StatusTooManyRequests, "reason", no.Reason, "client", clientString(client), "remote", r.RemoteAddr, "path", r.URL.Path, "suppressed", n)
	} else {
		s.metrics.limits.suppressed.Add(1)
	}
	w.Header().Set("Retry-After", no.RetryAfterSeconds())
	w.Header().Set("Connection", "close") // as refuseUpgrade: no idle keep-alive for a refused client
	jsonError(w, http.StatusTooManyRequests, no.Reason)
}

// release gives back what admit took.
func (s *Server) release(lease addrlimit.Lease) {
	s.conns.Add(-1)
	lease.Release()
}

// refuseUpgrade answers a handshake with status, Retry-After and the
// reason, and logs it (sampled). The connection is closed after the
// answer (Connection: close): a refused client must not keep it open as
// an idle keep-alive connection for net/http's idle timeout, which
// would let it hold connections the limits just refused.
func (s *Server) refuseUpgrade(w http.ResponseWriter, r *http.Request, client netip.AddrPort, status int, reason, retryAfter string) {
	if ok, n := s.refusalLog.Allow(time.Now()); ok {
		s.log.Info("chat: handshake refused", "status", status, "reason", reason, "client", clientString(client), "remote", r.RemoteAddr, "path", r.URL.Path, "suppressed", n)
	} else {
		s.metrics.limits.suppressed.Add(1)
	}
	w.Header().Set("Retry-After", retryAfter)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Connection", "close")
	http.Error(w, reason, status)
}

// originRefused logs (sampled) and counts a handshake refused with 403 for
// its Origin (refuseOrigin); the log line names the origin.
func (s *Server) originRefused(r *http.Request) {
	s.metrics.limits.origin.Add(1)
	if ok, n := s.refusalLog.Allow(time.Now()); ok {
		a, _, _ := s.cfg.Proxies.ClientAddr(r.RemoteAddr, r.Header)
		s.log.Info("chat: handshake refused: origin not allowed (see [server] allowed_origins)", "status", http.StatusForbidden, "origin", r.Header.Get("Origin"), "client", clientString(a), "remote", r.RemoteAddr, "path", r.URL.Path, "suppressed", n)
	} else {
		s.metrics.limits.suppressed.Add(1)
	}
}

// logRefusal logs a refused request at level through the refusal log's
// sampler (a burst of lines, then a few a second; each line says how many
// were left out before it, and moonchat_log_suppressed_total counts them):
// a client refused a million times must not write a million lines. The
// refusal itself is counted exactly by the caller's series.
func (s *Server) logRefusal(level slog.Level, msg string, args ...any) {
	ok, n := s.refusalLog.Allow(time.Now())
	if !ok {
		s.metrics.limits.suppressed.Add(1)
		return
	}
	s.log.Log(context.Background(), level, msg, append(args, "suppressed", n)...)
}

// refuseOrigin answers a handshake whose Origin is not allowed as the
// engine does (403, "origin not allowed"), and closes the connection.
func refuseOrigin(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, "origin not allowed\n")
}

// clientString is a client address for logs: "unknown" when a proxy named
// none.
func clientString(a netip.AddrPort) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}
