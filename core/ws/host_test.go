package ws

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hostRequest is a GET with Host host that arrived on local (when not
// empty) over TLS when tlsOn, with extra header lines ("Name: value").
func hostRequest(host, local string, tlsOn bool, extra ...string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = host
	if tlsOn {
		r.TLS = &tls.ConnectionState{}
	} else {
		r.TLS = nil
	}
	if local != "" {
		addr, err := net.ResolveTCPAddr("tcp", local)
		if err != nil {
			panic(err)
		}
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
	}
	for _, e := range extra {
		k, v, _ := strings.Cut(e, ": ")
		r.Header.Add(k, v)
	}
	return r
}

// TestHostPolicy: the DNS-rebinding check. Before it existed every Host
// was accepted, so each "refused" row failed.
func TestHostPolicy(t *testing.T) {
	configured := []string{"chat.example.com", "CHAT2.example.com.", "alt.example.com:8443", "*.example.org", "*.example.net:443", "192.0.2.10", "2001:db8::10", "[2001:db8::11]:8080"}
	for _, tc := range []struct {
		name  string
		hosts []string
		host  string
		local string // address the request arrived on
		tls   bool
		want  bool
	}{
		// Refused: the attack, and everything not listed.
		{"rebinding name", nil, "evil.example", "127.0.0.1:8080", false, false},
		{"rebinding name with port", nil, "evil.example:8080", "127.0.0.1:8080", false, false},
		{"rebinding name, names configured", configured, "evil.example:8080", "127.0.0.1:8080", false, false},
		{"empty", nil, "", "127.0.0.1:8080", false, false},
		{"bare IPv6", nil, "::1", "127.0.0.1:8080", false, false},
		{"junk port", nil, "localhost:http", "127.0.0.1:8080", false, false},
		{"other IP than arrival", nil, "192.0.2.99:8080", "192.0.2.1:8080", false, false},
		{"other IPv6 than arrival", nil, "[2001:db8::6]:8080", "[2001:db8::5]:8080", false, false},
		{"localhost lookalike", nil, "localhost.evil.example:8080", "127.0.0.1:8080", false, false},
		{"wildcard is not the domain itself", configured, "example.org", "192.0.2.1:80", false, false},
		{"wildcard suffix without dot", configured, "evilexample.org", "192.0.2.1:80", false, false},
		{"name with wrong port", configured, "alt.example.com:8444", "192.0.2.1:8443", false, false},
		{"name:443 vs http default port", configured, "alt.example.com", "192.0.2.1:8443", false, false},
		{"wildcard with wrong port", configured, "a.example.net:8443", "192.0.2.1:80", false, false},
		{"IPv6 rule with wrong port", configured, "[2001:db8::11]:8081", "192.0.2.1:80", false, false},
		{"no arrival address: IP refused", nil, "192.0.2.1:8080", "", false, false},

		// Accepted: loopback names with or without a port, IPv6 in brackets.
		{"localhost with port", nil, "localhost:8080", "127.0.0.1:8080", false, true},
		{"LOCALHOST.", nil, "LOCALHOST.:8080", "127.0.0.1:8080", false, true},
		{"127.0.0.1 with port", nil, "127.0.0.1:8080", "127.0.0.1:8080", false, true},
		{"[::1] with port", nil, "[::1]:8080", "127.0.0.1:8080", false, true},
		{"[::1] no port", nil, "[::1]", "127.0.0.1:8080", false, true},
		{"localhost other port (forwarded)", nil, "localhost:9000", "127.0.0.1:8080", false, true},
		{"loopback without arrival address", nil, "localhost:8080", "", false, true},
		// The address the request arrived on (a non-loopback listener).
		{"arrival IPv4", nil, "192.0.2.1:8080", "192.0.2.1:8080", false, true},
		{"arrival IPv6", nil, "[2001:db8::5]:8080", "[2001:db8::5]:8080", false, true},
		{"arrival 127.0.0.2", nil, "127.0.0.2:8080", "127.0.0.2:8080", false, true},
		{"arrival IPv4-mapped", nil, "192.0.2.1:8080", "[::ffff:192.0.2.1]:8080", false, true},
		// Configured names.
		{"configured name", configured, "chat.example.com", "192.0.2.1:80", false, true},
		{"configured name any port", configured, "CHAT.example.com:8080", "192.0.2.1:8080", false, true},
		{"configured FQDN entry", configured, "chat2.example.com:8080", "192.0.2.1:8080", false, true},
		{"configured FQDN host", configured, "chat.example.com.", "192.0.2.1:80", false, true},
		{"name:port", configured, "alt.example.com:8443", "192.0.2.1:8443", false, true},
		{"wildcard", configured, "a.b.example.org:8080", "192.0.2.1:8080", false, true},
		{"wildcard:443 over TLS without port", configured, "a.example.net", "192.0.2.1:443", true, true},
		{"configured IPv4", configured, "192.0.2.10:8080", "10.0.0.1:8080", false, true},
		{"configured IPv6", configured, "[2001:db8::10]:8080", "10.0.0.1:8080", false, true},
		{"configured IPv6 with port", configured, "[2001:db8::11]:8080", "10.0.0.1:8080", false, true},
		{"star", []string{"*"}, "evil.example", "127.0.0.1:8080", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewHostPolicy(tc.hosts)
			if err != nil {
				t.Fatal(err)
			}
			r := hostRequest(tc.host, tc.local, tc.tls)
			if got := p.Allowed(r); got != tc.want {
				t.Fatalf("Host %q (arrived on %q): allowed %v, want %v", tc.host, tc.local, got, tc.want)
			}
			err = p.Check(r)
			if tc.want != (err == nil) {
				t.Fatalf("Check: %v", err)
			}
			if he, ok := err.(*HandshakeError); err != nil && (!ok || he.Status != http.StatusMisdirectedRequest || strings.ContainsAny(he.Reason, "\r\n")) {
				t.Fatalf("Check: %#v", err)
			}
		})
	}
	// "name:443" also matches a Host without a port over TLS.
	p, _ := NewHostPolicy([]string{"alt.example.com:443"})
	if !p.Allowed(hostRequest("alt.example.com", "192.0.2.1:443", true)) {
		t.Fatal("alt.example.com:443 refused Host alt.example.com over TLS")
	}
	if !p.Allowed(hostRequest("alt.example.com", "192.0.2.1:8080", false, "X-Forwarded-Proto: https")) {
		t.Fatal("alt.example.com:443 refused Host alt.example.com behind a TLS proxy")
	}
}

func TestNewHostPolicyErrors(t *testing.T) {
	for _, bad := range []string{"", "http://chat.example.com", "chat.example.com/", "chat example", "chat.example.com:99999", "chat.example.com:x", "[chat.example.com]", "[192.0.2.1]:80", "*.192.0.2.1", "fe80::1%eth0", "..example", ".example", "ünï.example", "*"} {
		hosts := []string{bad}
		if bad == "*" {
			hosts = []string{"*", "chat.example.com"}
		}
		if _, err := NewHostPolicy(hosts); err == nil {
			t.Errorf("NewHostPolicy(%q) accepted", hosts)
		}
	}
	if _, err := NewServer(newRecHandler(), Config{Hosts: []string{"http://x"}}); err == nil {
		t.Error("NewServer accepted a bad Hosts entry")
	}
}

// TestSameOrigin: the default origin rule compares scheme, host and port;
// before, only the host was compared, so an http page was accepted by the
// https site.
func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		origin, host string
		tls          bool
		xfp          string
		want         bool
	}{
		{"http://localhost:8080", "localhost:8080", false, "", true},
		{"http://LOCALHOST:8080", "localhost:8080", false, "", true},
		{"http://[::1]:8080", "[::1]:8080", false, "", true},
		{"https://chat.example.com", "chat.example.com", true, "", true},
		{"https://chat.example.com", "chat.example.com:443", true, "", true},
		{"https://chat.example.com:443", "chat.example.com", true, "", true},
		{"http://chat.example.com", "chat.example.com:80", false, "", true},
		{"https://chat.example.com", "chat.example.com", false, "https", true}, // TLS proxy in front
		{"", "localhost:8080", false, "", false},
		{"null", "localhost:8080", false, "", false},
		{"http://evil.example", "localhost:8080", false, "", false},
		{"http://localhost:8081", "localhost:8080", false, "", false},
		{"http://localhost", "localhost:8080", false, "", false},
		// Scheme mismatch: an http page talking to the https site.
		{"http://chat.example.com", "chat.example.com", true, "", false},
		{"http://chat.example.com", "chat.example.com", false, "https", false},
		{"https://chat.example.com", "chat.example.com", false, "", false},
		{"https://localhost:8080", "localhost:8080", false, "", false},
	} {
		var extra []string
		if tc.origin != "" {
			extra = append(extra, "Origin: "+tc.origin)
		}
		if tc.xfp != "" {
			extra = append(extra, "X-Forwarded-Proto: "+tc.xfp)
		}
		if got := SameOrigin(hostRequest(tc.host, "", tc.tls, extra...)); got != tc.want {
			t.Errorf("Origin %q, Host %q, TLS %v, X-Forwarded-Proto %q: %v, want %v", tc.origin, tc.host, tc.tls, tc.xfp, got, tc.want)
		}
	}
}

// TestUpgradeHost: Host and Origin combinations over the wire. The
// DNS-rebinding request (Host and Origin both the attacker's name) used to
// be upgraded; it now gets 421 and no connection.
func TestUpgradeHost(t *testing.T) {
	ts := newTestServer(t, Config{Hosts: []string{"chat.example.com", "*.example.org:8443"}}, false, nil)
	_, port, _ := net.SplitHostPort(ts.addr)
	for _, tc := range []struct {
		host, origin string
		status       int
	}{
		{"evil.example", "http://evil.example", 421},
		{"evil.example:" + port, "http://evil.example:" + port, 421},
		{"evil.example:" + port, "", 421},
		{"a.example.org:" + port, "http://a.example.org:" + port, 421},
		{"localhost:" + port, "http://localhost:" + port, 101},
		{"127.0.0.1:" + port, "http://127.0.0.1:" + port, 101},
		{"[::1]:" + port, "http://[::1]:" + port, 101},
		{"localhost:" + port, "", 101},
		{"chat.example.com", "http://chat.example.com", 101},
		{"chat.example.com:" + port, "http://chat.example.com:" + port, 101},
		{"a.example.org:8443", "http://a.example.org:8443", 101},
		// Host allowed, Origin another site or another scheme.
		{"localhost:" + port, "http://evil.example", 403},
		{"chat.example.com", "https://chat.example.com", 403},
		{"localhost:" + port, "https://localhost:" + port, 403},
	} {
		t.Run(tc.host+" "+tc.origin, func(t *testing.T) {
			var extra []string
			if tc.origin != "" {
				extra = append(extra, "Origin: "+tc.origin)
			}
			rc := dialTCP(t, ts.addr)
			rc.write([]byte(handshakeRequest(tc.host, "/", extra...)))
			resp := rc.response()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 421 && string(body) != "host \""+tc.host+"\" is not a name this server answers to\n" {
				t.Fatalf("body %q", body)
			}
			if tc.status == 101 {
				ts.h.next(t, "open")
			}
		})
	}
	// The same checks through CheckHost, for an application's other paths.
	r := hostRequest("evil.example", ts.addr, false)
	if he, ok := ts.srv.CheckHost(r).(*HandshakeError); !ok || he.Status != 421 {
		t.Fatalf("CheckHost(evil.example) = %v", ts.srv.CheckHost(r))
	}
	if err := ts.srv.CheckHost(hostRequest("chat.example.com", ts.addr, false)); err != nil {
		t.Fatalf("CheckHost(chat.example.com) = %v", err)
	}
}
