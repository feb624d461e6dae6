package chat_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// withLog gives cfg a logger writing to the returned buffer (and the test
// log when the test fails).
func withLog(t *testing.T, cfg chat.Config) (chat.Config, *lockedBuffer) {
	buf := &lockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(buf, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", buf)
		}
	})
	return cfg, buf
}

// handshake dials url from the local address ip ("" = any) with header
// and returns the HTTP answer of a refusal (status, Retry-After, body) or
// the open connection (closed at the end of the test).
func handshake(t *testing.T, ip, url string, header http.Header) (status int, retryAfter, body string, c *websocket.Conn) {
	status, retryAfter, body, c, _ = handshakeResp(t, ip, url, header)
	return status, retryAfter, body, c
}

// handshakeResp is handshake that also returns whether a refusal said
// "Connection: close".
func handshakeResp(t *testing.T, ip, url string, header http.Header) (status int, retryAfter, body string, c *websocket.Conn, closes bool) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: chattest.Wait}
	if ip != "" {
		d.NetDialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	}
	c, resp, err := d.Dial(url, header)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
		return http.StatusSwitchingProtocols, "", "", c, false
	}
	if resp == nil {
		t.Fatalf("dial %s from %s: %v", url, ip, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), nil, resp.Close
}

// peer is a plain-text chat client dialled from a chosen loopback
// address (chattest's Dial lets the system choose).
type peer struct {
	t    *testing.T
	Conn *websocket.Conn
}

// dialAddr connects to url from the local address ip (any 127.0.0.0/8
// address is loopback on Linux), so that a test shows what a per-address
// limit does to two clients.
func dialAddr(t *testing.T, ip, url, proto string) *peer {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: chattest.Wait, NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s from %s: %v (HTTP %d)", url, ip, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &peer{t: t, Conn: c}
}

// Send sends one text frame.
func (p *peer) Send(text string) {
	p.t.Helper()
	if err := p.Conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// Read returns the next text frame (bounded by chattest.Wait).
func (p *peer) Read() string {
	p.t.Helper()
	_ = p.Conn.SetReadDeadline(time.Now().Add(chattest.Wait))
	_, data, err := p.Conn.ReadMessage()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return string(data)
}

// Expect reads frames and fails unless they are lines, in order.
func (p *peer) Expect(lines ...string) {
	p.t.Helper()
	for i, want := range lines {
		if got := p.Read(); got != want {
			p.t.Fatalf("frame %d: got %q, want %q", i, got, want)
		}
	}
}

// SkipTo reads until a frame matches.
func (p *peer) SkipTo(match func(string) bool) string {
	p.t.Helper()
	for {
		if s := p.Read(); match(s) {
			return s
		}
	}
}

// chats proves c is served: it joins as name and sees its own message.
func chats(t *testing.T, c *peer, name string) {
	t.Helper()
	c.Expect("* " + name + " joined")
	c.Send("still here")
	c.Expect(name + ": still here")
}

// TestConnectionsPerAddress trips [server] max_connections_per_address: the
// third connection from 127.0.0.1 gets 429 with Retry-After and a reason,
// before any upgrade; a client from another address and the two already
// connected chat on; a closed connection frees its slot; the refusal is
// logged and counted.
func TestConnectionsPerAddress(t *testing.T) {
	cfg, log := withLog(t, chat.Config{AddrLimits: addrlimit.Config{MaxConns: 2}})
	ts := chattest.Start(t, cfg, nil, nil)
	a := dialAddr(t, "127.0.0.1", ts.WS+"/chat/r?name=a", "")
	a.Expect("* a joined")
	b := dialAddr(t, "127.0.0.1", ts.WS+"/chat/r?name=b", "")
	b.Expect("* b joined")
	a.Expect("* b joined")

	status, retry, body, _, closes := handshakeResp(t, "127.0.0.1", ts.WS+"/chat/r?name=c", nil)
	if status != http.StatusTooManyRequests || retry != "10" || body != "too many connections from your address (at most 2)\n" || !closes {
		t.Fatalf("third connection: %d Retry-After %q %q, Connection: close %v", status, retry, body, closes)
	}
	other := dialAddr(t, "127.0.0.2", ts.WS+"/chat/r?name=other", "")
	chats(t, other, "other")
	a.Expect("* other joined", "other: still here")
	a.Send("hello")
	b.Expect("* other joined", "other: still here", "a: hello")

	_ = b.Conn.Close()
	a.Expect("a: hello", "* b left")
	chattest.Eventually(t, "slot released", func() bool { return metric(t, ts, "moonchat_connections") == 2 })
	c := dialAddr(t, "127.0.0.1", ts.WS+"/chat/r?name=c", "")
	chats(t, c, "c")

	if v := metric(t, ts, `moonchat_upgrades_refused_total{reason="address_connections"}`); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	if metric(t, ts, "moonchat_connections_refused_total") != 0 {
		t.Fatal("the refusal went through an upgrade")
	}
	if l := log.String(); !strings.Contains(l, `msg="chat: handshake refused" status=429 reason="too many connections from your address (at most 2)" client=127.0.0.1:`) {
		t.Fatalf("no log line:\n%s", l)
	}
}

// TestHandshakeRate trips [server] handshake_rate/handshake_burst: past the
// burst, 429 with Retry-After in whole seconds; another address is not
// affected; the connection already open chats on.
func TestHandshakeRate(t *testing.T) {
	ts := chattest.Start(t, chat.Config{AddrLimits: addrlimit.Config{Rate: 0.1, Burst: 2}}, nil, nil)
	a := dialAddr(t, "127.0.0.3", ts.WS+"/chat/r?name=a", "")
	a.Expect("* a joined")
	if status, _, _, c := handshake(t, "127.0.0.3", ts.WS+"/chat/r?name=b", nil); status != 101 {
		t.Fatalf("second handshake: %d", status)
	} else {
		// Closed only once b has joined: a connection that closes before
		// its join is processed never joins, and "b joined" would not come.
		_ = c.SetReadDeadline(time.Now().Add(chattest.Wait))
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("b waiting for its join: %v", err)
			}
			if string(data) == "* b joined" {
				break
			}
		}
		_ = c.Close()
	}
	status, retry, body, _ := handshake(t, "127.0.0.3", ts.WS+"/chat/r?name=c", nil)
	// One token back takes 10s; Retry-After rounds up (the test's own
	// time since the burst may have brought it down to 9).
	if status != http.StatusTooManyRequests || (retry != "10" && retry != "9") || !strings.HasPrefix(body, "too many connection attempts from your address; retry in ") {
		t.Fatalf("third handshake: %d Retry-After %q %q", status, retry, body)
	}
	a.Expect("* b joined", "* b left")
	other := dialAddr(t, "127.0.0.4", ts.WS+"/chat/r?name=other", "")
	chats(t, other, "other")
	a.Expect("* other joined", "other: still here")
	if v := metric(t, ts, `moonchat_upgrades_refused_total{reason="address_rate"}`); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
}

// TestLimitsExempt: an exempt network ([server] limits_exempt, by default
// 127.0.0.1 and ::1) is not limited; another loopback address is.
func TestLimitsExempt(t *testing.T) {
	exempt, err := addrlimit.ParsePrefixes([]string{"127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	ts := chattest.Start(t, chat.Config{AddrLimits: addrlimit.Config{MaxConns: 1, Rate: 0.1, Burst: 1, Exempt: exempt}}, nil, nil)
	for i := range 5 {
		c := dialAddr(t, "127.0.0.1", ts.WS+"/chat/r", "")
		c.SkipTo(func(s string) bool { return strings.HasSuffix(s, " joined") })
		_ = i
	}
	dialAddr(t, "127.0.0.5", ts.WS+"/chat/r?name=x", "").Expect("* x joined")
	if status, _, _, _ := handshake(t, "127.0.0.5", ts.WS+"/chat/r?name=y", nil); status != http.StatusTooManyRequests {
		t.Fatalf("second connection of a limited address: %d", status)
	}
	if v := metric(t, ts, "moonchat_limited_addresses"); v != 1 {
		t.Fatalf("tracked addresses: %v", v)
	}
}

// TestServerFull: at [server] max_connections a handshake is refused with
// 503 and Retry-After before the upgrade (not upgraded and closed with
// 1013); the members already in chat on; a freed slot is usable again.
func TestServerFull(t *testing.T) {
	ts := chattest.Start(t, chat.Config{MaxConnections: 2}, nil, nil)
	a := ts.Dial(t, "/chat/r?name=a", "")
	a.Expect("* a joined")
	b := ts.Dial(t, "/chat/r?name=b", "")
	b.Expect("* b joined")
	status, retry, body, _, closes := handshakeResp(t, "", ts.WS+"/chat/r?name=c", nil)
	if status != http.StatusServiceUnavailable || retry != "10" || body != "server full: try again later\n" || !closes {
		t.Fatalf("over max_connections: %d Retry-After %q %q, Connection: close %v", status, retry, body, closes)
	}
	a.Expect("* b joined")
	b.Send("hi")
	a.Expect("b: hi")
	if v := metric(t, ts, `moonchat_upgrades_refused_total{reason="server_full"}`); v != 1 {
		t.Fatalf("refusals counted: %v", v)
	}
	_ = b.Conn.Close()
	a.Expect("* b left")
	chattest.Eventually(t, "slot free", func() bool { return metric(t, ts, "moonchat_connections") == 1 })
	ts.Dial(t, "/chat/r?name=c", "").Expect("* c joined")
}

// TestTrustedProxies: behind a trusted proxy the per-address limits count
// the address in X-Forwarded-For (its rightmost untrusted hop, so a
// client's own entry to the left does not help it), and User.Addr shows
// it; the same header from an untrusted peer is ignored.
func TestTrustedProxies(t *testing.T) {
	trusted, _ := addrlimit.ParsePrefixes([]string{"127.0.0.1"})
	ts := chattest.Start(t, chat.Config{
		AddrLimits: addrlimit.Config{MaxConns: 1},
		Proxies:    addrlimit.NewProxies(trusted, addrlimit.XForwardedFor),
	}, nil, nil)
	xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }
	if status, _, _, _ := handshake(t, "127.0.0.1", ts.WS+"/chat/r?name=alice", xff("198.51.100.1")); status != 101 {
		t.Fatalf("first client through the proxy: %d", status)
	}
	chattest.Eventually(t, "alice joined", func() bool { return len(ts.Chat.Users("r")) == 1 })
	if got := ts.Chat.Users("r")[0].Addr; got != "198.51.100.1:0" {
		t.Fatalf("User.Addr %q, want the forwarded address", got)
	}
	if status, _, _, _ := handshake(t, "127.0.0.1", ts.WS+"/chat/r?name=a2", xff("203.0.113.9, 198.51.100.1")); status != http.StatusTooManyRequests {
		t.Fatalf("same client, spoofed left entry: %d", status)
	}
	if status, _, _, _ := handshake(t, "127.0.0.1", ts.WS+"/chat/r?name=bob", xff("198.51.100.2")); status != 101 {
		t.Fatalf("another client through the proxy: %d", status)
	}
	// Not a trusted proxy: its header is ignored, it is itself.
	if status, _, _, _ := handshake(t, "127.0.0.6", ts.WS+"/chat/r?name=c", xff("192.0.2.50")); status != 101 {
		t.Fatalf("untrusted peer: %d", status)
	}
	if status, _, _, _ := handshake(t, "127.0.0.6", ts.WS+"/chat/r?name=d", xff("192.0.2.51")); status != http.StatusTooManyRequests {
		t.Fatalf("untrusted peer choosing another address: %d", status)
	}
	// A proxy that names no usable address: one shared, limited key.
	if status, _, _, _ := handshake(t, "127.0.0.1", ts.WS+"/chat/r?name=e", xff("unknown")); status != 101 {
		t.Fatalf("unknown client: %d", status)
	}
	if status, _, _, _ := handshake(t, "127.0.0.1", ts.WS+"/chat/r?name=f", xff("garbage")); status != http.StatusTooManyRequests {
		t.Fatalf("second unknown client: %d", status)
	}
	if v := metric(t, ts, "moonchat_client_address_unknown_total"); v != 2 {
		t.Fatalf("unknown clients counted: %v", v)
	}
	for _, u := range ts.Chat.Users("r") {
		if _, err := netip.ParseAddrPort(u.Addr); err != nil {
			t.Errorf("User.Addr %q is not host:port", u.Addr)
		}
	}
}

// TestOriginRefusedLogged: a cross-origin upgrade is refused with 403, logged
// with the origin and counted; allowed_origins patterns let their origins
// in (exact, "*." subdomains, a default port written out); a member
// already connected does not notice.
func TestOriginRefusedLogged(t *testing.T) {
	cfg, log := withLog(t, chat.Config{AllowedOrigins: []string{"https://*.example.org", "https://chat.example.com:443"}})
	ts := chattest.Start(t, cfg, nil, nil)
	a := ts.Dial(t, "/chat/r?name=a", "")
	a.Expect("* a joined")
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	for _, o := range []string{"https://evil.example", "https://example.org", "http://a.example.org", "https://a.example.org.evil.example", "null"} {
		status, _, body, _ := handshake(t, "", ts.WS+"/chat/r?name=x", origin(o))
		if status != http.StatusForbidden || body != "origin not allowed\n" {
			t.Fatalf("Origin %s: %d %q", o, status, body)
		}
	}
	for _, o := range []string{"https://a.example.org", "https://b.c.example.org", "https://chat.example.com"} {
		if status, _, _, _ := handshake(t, "", ts.WS+"/chat/r", origin(o)); status != 101 {
			t.Fatalf("allowed Origin %s: %d", o, status)
		}
	}
	a.Send("fine")
	a.SkipTo(func(s string) bool { return s == "a: fine" })
	if v := metric(t, ts, `moonchat_upgrades_refused_total{reason="origin"}`); v != 5 {
		t.Fatalf("origin refusals counted: %v", v)
	}
	if l := log.String(); !strings.Contains(l, `origin=https://evil.example`) || !strings.Contains(l, "status=403") {
		t.Fatalf("the log does not name the refused origin:\n%s", l)
	}
}

// TestRefusalLogSampled: a client refused many times fills neither the log
// nor memory: a burst of lines, then a few a second, the rest counted as
// suppressed; every refusal is counted.
func TestRefusalLogSampled(t *testing.T) {
	cfg, log := withLog(t, chat.Config{AddrLimits: addrlimit.Config{Rate: 0.001, Burst: 1}})
	ts := chattest.Start(t, cfg, nil, nil)
	dialAddr(t, "127.0.0.7", ts.WS+"/chat/r?name=a", "").Expect("* a joined")
	const n = 200
	for range n {
		if status, _, _, _ := handshake(t, "127.0.0.7", ts.WS+"/chat/r", nil); status != http.StatusTooManyRequests {
			t.Fatalf("status %d", status)
		}
	}
	lines := strings.Count(log.String(), `msg="chat: handshake refused"`)
	suppressed := metric(t, ts, "moonchat_log_suppressed_total")
	if v := metric(t, ts, `moonchat_upgrades_refused_total{reason="address_rate"}`); v != n {
		t.Fatalf("refusals counted: %v", v)
	}
	if lines >= n/2 || float64(lines)+suppressed != n {
		t.Fatalf("%d lines logged, %v suppressed, for %d refusals", lines, suppressed, n)
	}
}

// TestOriginBeforeCredentials: a cross-site handshake is refused with 403
// before the Authenticator (the token check and the connect script) is
// asked: the Authenticator never runs, a bad token gets 403 rather than
// 401, and the refusal is logged and counted as an origin refusal. A
// same-origin handshake is still authenticated.
func TestOriginBeforeCredentials(t *testing.T) {
	var calls atomic.Int64
	cfg, log := withLog(t, chat.Config{Authenticator: authFunc(func(r *http.Request, _ string) (chat.Identity, bool, error) {
		calls.Add(1)
		if r.URL.Query().Get("token") != "good" {
			return chat.Identity{}, false, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "bad token"}
		}
		return chat.Identity{ID: "u1", Name: "alice"}, true, nil
	})})
	ts := chattest.Start(t, cfg, nil, nil)
	evil := http.Header{"Origin": {"https://evil.example"}}
	for _, q := range []string{"token=good", "token=bad", ""} {
		status, _, body, _ := handshake(t, "", ts.WS+"/chat/r?"+q, evil)
		if status != http.StatusForbidden || body != "origin not allowed\n" {
			t.Fatalf("cross-site handshake %q: %d %q", q, status, body)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the Authenticator ran %d times for cross-site handshakes", n)
	}
	if v := metric(t, ts, `moonchat_upgrades_refused_total{reason="origin"}`); v != 3 {
		t.Fatalf("origin refusals counted: %v", v)
	}
	if v := metric(t, ts, `moonchat_auth_refused_total{status="401"}`); v != 0 {
		t.Fatalf("auth refusals counted: %v", v)
	}
	if l := log.String(); !strings.Contains(l, "origin=https://evil.example") || strings.Contains(l, "refused by authentication") {
		t.Fatalf("log:\n%s", l)
	}
	// Same origin (and no Origin): authenticated as before.
	same := http.Header{"Origin": {strings.Replace(ts.WS, "ws://", "http://", 1)}}
	if status, _, body, _ := handshake(t, "", ts.WS+"/chat/r?token=bad", same); status != http.StatusUnauthorized {
		t.Fatalf("same-origin bad token: %d %q", status, body)
	}
	if status, _, _, _ := handshake(t, "", ts.WS+"/chat/r?token=good", same); status != http.StatusSwitchingProtocols {
		t.Fatalf("same-origin good token: %d", status)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the Authenticator ran %d times, want 2", n)
	}
}

// getFrom GETs url from the local address ip and returns the status,
// Retry-After and body.
func getFrom(t *testing.T, ip, url string) (status int, retryAfter, body string) {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: chattest.Wait}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, ip, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// TestAPIAddressLimit: /api/session, /api/history and /api/rooms count
// against the per-address handshake limit (they ask the Authenticator,
// which runs the connect script): past the burst an address gets 429 with
// Retry-After and a JSON reason, its handshakes are refused too, and the
// Authenticator is not asked; another address and an exempt one are
// unaffected; every refusal is counted.
func TestAPIAddressLimit(t *testing.T) {
	var calls atomic.Int64
	exempt, err := addrlimit.ParsePrefixes([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, log := withLog(t, chat.Config{
		AddrLimits: addrlimit.Config{Rate: 0.001, Burst: 3, Exempt: exempt},
		Authenticator: authFunc(func(*http.Request, string) (chat.Identity, bool, error) {
			calls.Add(1)
			return chat.Identity{}, false, nil
		}),
	})
	ts := chattest.Start(t, cfg, nil, chattest.NewHistory())
	// (chattest's History lists no rooms: /api/rooms answers 503, but
	// only once the address was admitted.)
	for _, p := range []string{"/api/session?room=r", "/api/history?room=r", "/api/rooms"} {
		if status, _, body := getFrom(t, "127.0.0.10", ts.HTTP+p); status == http.StatusTooManyRequests {
			t.Fatalf("%s: %d %s", p, status, body)
		}
	}
	asked := calls.Load()
	for _, p := range []string{"/api/session?room=r", "/api/history?room=r", "/api/rooms"} {
		status, retry, body := getFrom(t, "127.0.0.10", ts.HTTP+p)
		if status != http.StatusTooManyRequests || retry == "" || !strings.HasPrefix(body, `{"error":"too many connection attempts from your address; retry in `) {
			t.Fatalf("%s over the limit: %d Retry-After %q %s", p, status, retry, body)
		}
	}
	if status, _, _, _ := handshake(t, "127.0.0.10", ts.WS+"/chat/r", nil); status != http.StatusTooManyRequests {
		t.Fatalf("handshake after the API used the burst: %d", status)
	}
	if n := calls.Load(); n != asked {
		t.Fatalf("the Authenticator ran %d times for refused requests", n-asked)
	}
	for _, ip := range []string{"127.0.0.11", "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"} {
		if status, _, body := getFrom(t, ip, ts.HTTP+"/api/session?room=r"); status != http.StatusOK {
			t.Fatalf("/api/session from %s: %d %s", ip, status, body)
		}
	}
	if v := metric(t, ts, `moonchat_api_refused_total{reason="address_rate"}`); v != 3 {
		t.Fatalf("API refusals counted: %v", v)
	}
	if l := log.String(); !strings.Contains(l, `msg="chat: API request refused" status=429`) || !strings.Contains(l, "path=/api/rooms") {
		t.Fatalf("no log line:\n%s", l)
	}
}

// TestRequestRefusalLogsSampled: requests refused for their Host (421), by
// the Authenticator (401) and for want of the admin token (401) write a
// burst of log lines, then a few a second, not one each; every refusal is
// counted exactly in its own series and every line left out in
// moonchat_log_suppressed_total.
func TestRequestRefusalLogsSampled(t *testing.T) {
	cfg, log := withLog(t, chat.Config{
		AdminToken: strings.Repeat("k", 40),
		Authenticator: authFunc(func(r *http.Request, _ string) (chat.Identity, bool, error) {
			return chat.Identity{}, false, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "bad token"}
		}),
	})
	ts := chattest.Start(t, cfg, nil, nil)
	const n = 150
	get := func(path, host string, want int) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.HTTP+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s (Host %q): %d, want %d", path, host, resp.StatusCode, want)
		}
	}
	for range n {
		get("/", "evil.example", http.StatusMisdirectedRequest)
		get("/api/session?room=r&token=x", "", http.StatusUnauthorized)
		get("/api/members", "", http.StatusUnauthorized)
	}
	l := log.String()
	lines := 0
	for _, msg := range []string{"chat: request refused: Host not allowed", "chat: request refused by authentication", "chat: admin request refused: no or wrong admin token"} {
		c := strings.Count(l, `msg="`+msg+`"`)
		if c == 0 || c >= n/2 {
			t.Errorf("%d lines %q for %d refusals", c, msg, n)
		}
		lines += c
	}
	for series, want := range map[string]float64{
		"moonchat_host_refused_total":                                           n,
		`moonchat_auth_refused_total{status="401"}`:                             n,
		`moonchat_admin_requests_total{action="members",result="unauthorized"}`: n,
	} {
		if v := metric(t, ts, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if suppressed := metric(t, ts, "moonchat_log_suppressed_total"); float64(lines)+suppressed != 3*n {
		t.Errorf("%d lines logged + %v suppressed != %d refusals", lines, suppressed, 3*n)
	}
	if !strings.Contains(l, "suppressed=") {
		t.Errorf("no line says how many were left out:\n%s", l)
	}
}
