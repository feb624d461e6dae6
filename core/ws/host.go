package ws

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// HostPolicy decides which Host header values a server answers to: the
// defence against DNS rebinding. A page on evil.example whose name the
// attacker then points at 127.0.0.1 reaches a loopback server with
// "Host: evil.example" and "Origin: http://evil.example"; an origin check
// (RFC 6455 section 10.2) accepts that, because Origin and Host both name
// the attacker's site. Only checking Host against the names the server is
// meant to answer to refuses it.
//
// Always accepted, whatever the port: localhost, 127.0.0.1 and [::1]
// (names no attacker can point elsewhere), and the IP address the request
// arrived on (http.LocalAddrContextKey): an IP literal cannot be rebound,
// and it is what a client that was given no name uses. The port is not
// compared for these: a rebinding attack controls the name, not the port,
// and port forwards (ssh -L, docker -p) change it.
//
// The list given to NewHostPolicy adds, case-insensitively:
//   - "name" — that name with any port (or none);
//   - "name:port" — that name with that port only (a Host without a port
//     means the scheme's default port: 80, or 443 over TLS);
//   - "*.domain" or "*.domain:port" — any subdomain of domain (not domain
//     itself);
//   - an IP address ("192.0.2.7", "2001:db8::1", "[2001:db8::1]:8443");
//   - "*" alone — any Host at all: no DNS-rebinding protection.
//
// Names are ASCII (an internationalised name in its xn-- form); a trailing
// dot (fully qualified form) is ignored.
type HostPolicy struct {
	any     bool
	entries []string   // as configured, for String
	rules   []hostRule // from entries
}

// hostRule is one parsed entry of the list.
type hostRule struct {
	host     string // lower case, no trailing dot, IPs in netip form; ".domain" for wildcards
	wildcard bool
	port     int // -1 = any
}

// loopbackHosts are accepted whatever the list says.
var loopbackHosts = [...]string{"localhost", "127.0.0.1", "::1"}

// NewHostPolicy parses the extra host names a server answers to (see
// HostPolicy); an empty list accepts only the loopback names and the
// address a request arrived on.
func NewHostPolicy(hosts []string) (*HostPolicy, error) {
	p := &HostPolicy{entries: append([]string(nil), hosts...)}
	var errs []error
	for _, h := range hosts {
		if h == "*" {
			if len(hosts) != 1 {
				errs = append(errs, errors.New(`host "*" accepts any Host: it must be the only entry`))
			}
			p.any = true
			continue
		}
		r, err := parseHostRule(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.rules = append(p.rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// parseHostRule parses one list entry.
func parseHostRule(entry string) (hostRule, error) {
	bad := func(why string) (hostRule, error) {
		return hostRule{}, fmt.Errorf("invalid host %q: %s", entry, why)
	}
	s := entry
	// A bare IPv6 address ("2001:db8::1") has colons but no port.
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return hostRule{host: a.Unmap().String(), port: -1}, nil
	}
	host, port, ok := splitHostPort(s)
	if !ok {
		return bad(`want name, name:port, *.domain, an IP address or "*"`)
	}
	r := hostRule{host: host, port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		r.host, r.wildcard = "."+rest, true
		host = rest
	}
	if _, err := netip.ParseAddr(host); err == nil {
		if r.wildcard {
			return bad("a wildcard needs a domain name, not an address")
		}
		return r, nil
	}
	if strings.HasPrefix(s, "[") {
		return bad("brackets are for IPv6 addresses")
	}
	for _, c := range []byte(host) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return bad("a name has only letters, digits, '-', '_' and '.' (write an internationalised name in its xn-- form)")
		}
	}
	if strings.HasPrefix(host, ".") || strings.Contains(host, "..") {
		return bad("empty label")
	}
	return r, nil
}

// splitHostPort splits a Host header value (RFC 9110 section 7.2:
// uri-host [ ":" port ]) into its host, lower case without a trailing dot
// (IPv6 without brackets, IPs in netip form), and its port (-1 when absent).
func splitHostPort(h string) (host string, port int, ok bool) {
	port = -1
	var p string
	hasPort := false
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", 0, false
		}
		host, p = h[1:end], h[end+1:]
		if p != "" {
			if p[0] != ':' {
				return "", 0, false
			}
			p, hasPort = p[1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return "", 0, false
		}
	} else {
		host = h
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			host, p, hasPort = h[:i], h[i+1:], true
		}
		if strings.Contains(host, ":") {
			return "", 0, false // an IPv6 literal must be in brackets
		}
	}
	if hasPort && p != "" { // RFC 3986 allows an empty port: the default
		if len(p) > 5 {
			return "", 0, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 || p[0] == '+' || p[0] == '-' {
			return "", 0, false
		}
		port = n
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return "", 0, false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return host, port, true
}

// RequestScheme returns how r reached the server: "https" when it came
// over TLS; else the first X-Forwarded-Proto value when it is "http" or
// "https" (a TLS-terminating proxy in front says how the client
// connected); else "http". Trusting X-Forwarded-Proto is safe for origin
// checks: a browser page cannot set it (not on a WebSocket handshake, and
// not on a cross-origin fetch without a CORS preflight), and non-browser
// clients can send any Origin anyway.
func RequestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	v, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if v = strings.ToLower(strings.TrimSpace(v)); v == "https" || v == "http" {
		return v
	}
	return "http"
}

// defaultPort is the port a URL of scheme means when it names none.
func defaultPort(scheme string) int {
	switch scheme {
	case "https", "wss":
		return 443
	default:
		return 80
	}
}

// Allowed reports whether r's Host is one the server answers to.
func (p *HostPolicy) Allowed(r *http.Request) bool {
	if p != nil && p.any {
		return true
	}
	host, port, ok := splitHostPort(r.Host)
	if !ok {
		return false
	}
	for _, h := range loopbackHosts {
		if host == h {
			return true
		}
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(local.String()); err == nil && ap.Addr().Unmap().WithZone("").String() == host {
			return true
		}
	}
	if p == nil {
		return false
	}
	if port < 0 {
		port = defaultPort(RequestScheme(r))
	}
	for _, rule := range p.rules {
		if rule.port >= 0 && rule.port != port {
			continue
		}
		if rule.wildcard {
			if strings.HasSuffix(host, rule.host) && len(host) > len(rule.host) {
				return true
			}
		} else if host == rule.host {
			return true
		}
	}
	return false
}

// Check returns nil when r's Host is allowed, else a *HandshakeError with
// status 421 Misdirected Request (RFC 9110 section 15.5.20: the server is
// not willing to answer for that name) and a one-line reason.
func (p *HostPolicy) Check(r *http.Request) error {
	if p.Allowed(r) {
		return nil
	}
	reason := "missing Host header"
	if r.Host != "" {
		reason = fmt.Sprintf("host %q is not a name this server answers to", r.Host)
	}
	return &HandshakeError{Status: http.StatusMisdirectedRequest, Reason: reason}
}

// String describes what the policy accepts, for start-up logs.
func (p *HostPolicy) String() string {
	if p != nil && p.any {
		return "any host (\"*\": no DNS-rebinding protection)"
	}
	s := "localhost, 127.0.0.1, [::1], the IP address a request arrived on"
	if p != nil {
		for _, e := range p.entries {
			s += ", " + e
		}
	}
	return s
}

// SameOrigin reports whether r's Origin header names the site r was sent
// to (RFC 6454 section 5): the same scheme (RequestScheme: an http page
// may not talk to the https site), host (Host) and port (the scheme's
// default port when absent). It is false without an Origin header.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != RequestScheme(r) {
		return false
	}
	oh, op, ok := splitHostPort(u.Host)
	if !ok {
		return false
	}
	rh, rp, ok := splitHostPort(r.Host)
	if !ok {
		return false
	}
	if op < 0 {
		op = defaultPort(scheme)
	}
	if rp < 0 {
		rp = defaultPort(scheme)
	}
	return oh == rh && op == rp
}
