// Package addrlimit decides which client a request comes from and how much
// one client address may take: concurrent connections and handshakes per
// second, with exempt networks. It is the one definition of "an address"
// for every per-address limit in moonchat (WebSocket upgrades in
// core/chat, the /api/login limit in cmd/moonchat):
//
//   - An IPv4 address is itself; an IPv4-mapped IPv6 address
//     (::ffff:192.0.2.1) is its IPv4 address.
//   - An IPv6 address counts as its /64: one host is usually given a whole
//     /64 (RFC 6177, SLAAC), so counting single addresses would let it
//     multiply every limit by 2^64.
//   - Behind a reverse proxy the peer of the TCP connection is the proxy.
//     Proxies lists the networks whose forwarding header (X-Forwarded-For
//     or RFC 7239 Forwarded) is believed; from anyone else the header is
//     ignored, so a client cannot choose its own address.
//
// Nothing here imports the chat server or the WebSocket engine.
package addrlimit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Key returns the prefix a per-address limit counts ip against: ip/32 for
// IPv4 (an IPv4-mapped IPv6 address is unmapped first), the /64 holding ip
// for IPv6. The invalid netip.Addr gives the zero Prefix: one shared key
// for every client whose address is unknown.
func Key(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits) // cannot fail: bits fits the family
	return p
}

// KeyOf is Key for a textual address, "host:port" (http.Request.RemoteAddr)
// or a bare host: the key's string (192.0.2.1, 2001:db8:1:2::/64). A host
// that is no IP address is returned unchanged (it is still one key).
func KeyOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	k := Key(ip)
	if k.Addr().Is4() {
		return k.Addr().String()
	}
	return k.String()
}

// ParsePrefixes parses a list of networks: CIDR prefixes ("10.0.0.0/8",
// "2001:db8::/32") or single addresses ("127.0.0.1", "::1"). An
// IPv4-mapped IPv6 entry is taken as the IPv4 network it maps. The
// error names the first entry that is neither.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			if err == nil && a.Zone() != "" {
				return nil, fmt.Errorf("%q: an address with a zone cannot be matched", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("%q: want an IP address or a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// contains reports whether ip (unmapped) is in one of nets.
func contains(nets []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Header names a forwarding header a trusted proxy sets.
type Header int

const (
	// XForwardedFor is "X-Forwarded-For: client, proxy1, proxy2", which
	// nginx ($proxy_add_x_forwarded_for), Caddy, HAProxy and most load
	// balancers append to.
	XForwardedFor Header = iota
	// Forwarded is RFC 7239's "Forwarded: for=client;proto=https, for=...".
	Forwarded
)

// ParseHeader maps a header name (case-insensitive) to a Header:
// "X-Forwarded-For" or "Forwarded".
func ParseHeader(name string) (Header, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "x-forwarded-for":
		return XForwardedFor, nil
	case "forwarded":
		return Forwarded, nil
	}
	return 0, fmt.Errorf("forwarding header %q: want \"X-Forwarded-For\" or \"Forwarded\"", name)
}

// String returns the header's canonical name.
func (h Header) String() string {
	if h == Forwarded {
		return "Forwarded"
	}
	return "X-Forwarded-For"
}

// Proxies resolves the client address of a request: the TCP peer, or,
// when the peer is a trusted proxy, the rightmost address in the
// forwarding header that is not itself a trusted proxy (the hop the first
// trusted proxy saw: entries to its left were written by the client and
// can be anything). The zero value trusts nobody. Safe for concurrent use
// (it is read-only).
type Proxies struct {
	trusted []netip.Prefix
	header  Header
}

// NewProxies returns a resolver believing header from the trusted
// networks only.
func NewProxies(trusted []netip.Prefix, header Header) Proxies {
	return Proxies{trusted: trusted, header: header}
}

// Header returns the forwarding header p believes.
func (p Proxies) Header() Header { return p.header }

// ErrUnknownClient is ClientAddr's answer when the address cannot be
// known: the peer is no IP address, or a trusted proxy named the client
// "unknown", an obfuscated identifier (RFC 7239 section 6.3) or
// something unparsable.
var ErrUnknownClient = errors.New("client address unknown")

// ClientAddr returns the client address of a request that arrived from
// remote ("host:port", http.Request.RemoteAddr) with header h, and
// whether it came from a forwarding header. The port is 0 when a proxy
// did not give one. On ErrUnknownClient the caller must not trust the
// request more than any other: Key(netip.Addr{}) is one key shared by
// every unknown client, and no exemption matches it.
func (p Proxies) ClientAddr(remote string, h http.Header) (netip.AddrPort, bool, error) {
	peer, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, err2 := netip.ParseAddr(remote)
		if err2 != nil {
			return netip.AddrPort{}, false, ErrUnknownClient
		}
		peer = netip.AddrPortFrom(a, 0)
	}
	peer = netip.AddrPortFrom(peer.Addr().Unmap().WithZone(""), peer.Port())
	if len(p.trusted) == 0 || !contains(p.trusted, peer.Addr()) {
		return peer, false, nil
	}
	var hops []string
	if p.header == Forwarded {
		hops = forwardedFor(h.Values("Forwarded"))
	} else {
		for _, v := range h.Values("X-Forwarded-For") {
			for hop := range strings.SplitSeq(v, ",") {
				hops = append(hops, strings.TrimSpace(hop))
			}
		}
	}
	if len(hops) == 0 {
		return peer, false, nil // the proxy's own request (health checks)
	}
	for i := len(hops) - 1; ; i-- {
		a, ok := parseNode(hops[i])
		if !ok {
			return netip.AddrPort{}, true, ErrUnknownClient
		}
		// Every hop trusted: the leftmost is the client (a request
		// from inside the proxies' own networks).
		if i == 0 || !contains(p.trusted, a.Addr()) {
			return a, true, nil
		}
	}
}

// parseNode parses one hop: an IP address, "IPv4:port", "[IPv6]" or
// "[IPv6]:port" (RFC 7239 section 6; X-Forwarded-For uses the same forms
// in practice). "unknown" and obfuscated names are not addresses.
func parseNode(s string) (netip.AddrPort, bool) {
	if s == "" {
		return netip.AddrPort{}, false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap().WithZone(""), 0), true
}

// forwardedFor returns the for= values of RFC 7239 Forwarded header
// fields, one per forwarded-element, in order; an element without for=
// gives "" (an unknown hop). Quoted strings are unquoted (section 4:
// forwarded-pair = token "=" value; value = token / quoted-string).
func forwardedFor(fields []string) []string {
	var hops []string
	for _, f := range fields {
		var (
			forVal  string
			hasFor  bool
			inQuote bool
			escaped bool
			tok     strings.Builder
			key     string
			empty   = true // nothing in this element yet
		)
		endPair := func() {
			if key == "" {
				key = tok.String()
				tok.Reset()
			}
			if strings.EqualFold(strings.TrimSpace(key), "for") && !hasFor {
				forVal, hasFor = strings.TrimSpace(tok.String()), true
			}
			key = ""
			tok.Reset()
		}
		endElement := func() {
			endPair()
			if !empty {
				hops = append(hops, forVal)
			}
			forVal, hasFor, empty = "", false, true
		}
		for _, c := range []byte(f) {
			switch {
			case escaped:
				tok.WriteByte(c)
				escaped = false
			case inQuote && c == '\\':
				escaped = true
			case c == '"':
				inQuote = !inQuote
				empty = false
			case inQuote:
				tok.WriteByte(c)
			case c == '=' && key == "":
				key = tok.String()
				tok.Reset()
				empty = false
			case c == ';':
				endPair()
			case c == ',':
				endElement()
			case c == ' ' || c == '\t':
				// OWS around separators
			default:
				tok.WriteByte(c)
				empty = false
			}
		}
		endElement()
	}
	return hops
}
