package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestLoginLimitKeysClients: the /api/login limit counts the client address
// as the WebSocket limits do (core/addrlimit): behind a trusted proxy
// ([server] trusted_proxies) the forwarded address, so two clients behind
// one proxy do not share a bucket; a header from an untrusted peer is
// ignored; an IPv6 /64 is one address.
func TestLoginLimitKeysClients(t *testing.T) {
	s := &ServerConfig{TrustedProxies: []string{"127.0.0.1"}, ForwardedHeader: "X-Forwarded-For", LimitsExempt: []string{}}
	_, proxies, err := addrLimits(s)
	if err != nil {
		t.Fatal(err)
	}
	req := func(remote, xff string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/login", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return r
	}
	for _, tc := range []struct{ remote, xff, want string }{
		{"127.0.0.1:40000", "198.51.100.1", "198.51.100.1"},
		{"127.0.0.1:40001", "6.6.6.6, 198.51.100.2", "198.51.100.2"},
		{"192.0.2.7:40000", "198.51.100.1", "192.0.2.7"},
		{"[2001:db8:1:2::1]:1", "", "2001:db8:1:2::/64"},
		{"127.0.0.1:40002", "2001:db8:1:2::99", "2001:db8:1:2::/64"},
		{"127.0.0.1:40003", "unknown", "unknown"},
	} {
		if got := clientKey(proxies, req(tc.remote, tc.xff)); got != tc.want {
			t.Errorf("%s with X-Forwarded-For %q: key %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
	// Two clients behind the proxy: separate buckets.
	l := newAddrLimiter(rate.Every(time.Minute), 1, 10)
	now := time.Unix(1000, 0)
	if ok, _ := l.allow(clientKey(proxies, req("127.0.0.1:1", "198.51.100.1")), now); !ok {
		t.Fatal("first client refused")
	}
	if ok, _ := l.allow(clientKey(proxies, req("127.0.0.1:2", "198.51.100.1")), now); ok {
		t.Fatal("first client's second attempt allowed")
	}
	if ok, _ := l.allow(clientKey(proxies, req("127.0.0.1:3", "198.51.100.3")), now); !ok {
		t.Fatal("another client behind the same proxy refused")
	}
}

// TestScriptsSeeTheClient: the connect script's req.addr is the client's
// address behind a trusted proxy (as user.addr is), the peer's otherwise;
// an untrusted peer's X-Forwarded-For is ignored.
func TestScriptsSeeTheClient(t *testing.T) {
	_, proxies, err := addrLimits(&ServerConfig{TrustedProxies: []string{"127.0.0.1"}, ForwardedHeader: "X-Forwarded-For"})
	if err != nil {
		t.Fatal(err)
	}
	a := &authenticator{proxies: proxies}
	for _, tc := range []struct{ remote, xff, want string }{
		{"127.0.0.1:40000", "198.51.100.1", "198.51.100.1:0"},
		{"192.0.2.7:40000", "198.51.100.1", "192.0.2.7:40000"},
		{"127.0.0.1:40000", "", "127.0.0.1:40000"},
		{"127.0.0.1:40000", "unknown", "127.0.0.1:40000"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/chat/lobby", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := a.connectRequest(r, "lobby", nil).Addr; got != tc.want {
			t.Errorf("%s, X-Forwarded-For %q: req.addr %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
}
