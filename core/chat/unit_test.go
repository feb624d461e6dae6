package chat

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestValidRoomName(t *testing.T) {
	for _, tc := range []struct {
		room string
		ok   bool
	}{
		{"lobby", true}, {"a", true}, {"Go-dev_2.0", true}, {strings.Repeat("r", 32), true},
		{"", false}, {strings.Repeat("r", 33), false}, {"a b", false}, {"a/b", false},
		{"café", false}, {"a%20", false},
	} {
		err := ValidRoomName(tc.room)
		if (err == nil) != tc.ok {
			t.Errorf("ValidRoomName(%q) = %v, want ok=%v", tc.room, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidRoom) {
			t.Errorf("ValidRoomName(%q) = %v, not ErrInvalidRoom", tc.room, err)
		}
	}
}

func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "nl\nret\rtab\t", "ctl\x00\x01\x1f\x7f",
		"<script>&amp;</script>", "line\u2028sep\u2029", "emoji 😀 é", "bad \xff utf8 \xc3",
	} {
		got := appendJSONString(nil, s)
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, encoding/json gives %s", s, got, want)
		}
	}
}

func TestJSONEvents(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 6, 2_000_000, time.UTC)
	m := &Message{ID: 42, Room: "lobby", User: "alice", Text: "hello", Time: ts}
	for _, tc := range []struct {
		got  []byte
		want string
	}{
		{appendJSONMessage(nil, m), `{"type":"message","id":42,"room":"lobby","user":"alice","text":"hello","ts":"2026-11-22T10:00:06.002Z"}`},
		{appendJSONWelcome(nil, "lobby", "alice"), `{"type":"welcome","room":"lobby","user":"alice"}`},
		{appendJSONSystem(nil, "lobby", "alice joined", ts.In(time.FixedZone("X", 3600))), `{"type":"system","room":"lobby","text":"alice joined","ts":"2026-11-22T10:00:06.002Z"}`},
		{appendJSONPresence(nil, "lobby", []string{"bob", "alice"}), `{"type":"presence","room":"lobby","users":["bob","alice"]}`},
		{appendJSONPresence(nil, "lobby", nil), `{"type":"presence","room":"lobby","users":[]}`},
		{appendJSONPresenceDelta(nil, "lobby", []string{"bob", "eve"}, nil), `{"type":"presence","room":"lobby","joined":["bob","eve"]}`},
		{appendJSONPresenceDelta(nil, "lobby", nil, []string{"bob"}), `{"type":"presence","room":"lobby","left":["bob"]}`},
		{appendJSONPresenceDelta(nil, "lobby", []string{"a\"b"}, []string{"c"}), `{"type":"presence","room":"lobby","joined":["a\"b"],"left":["c"]}`},
		{appendJSONRename(nil, "lobby", "a", "b"), `{"type":"rename","room":"lobby","old":"a","new":"b"}`},
		{appendJSONRedact(nil, "lobby", 7), `{"type":"redact","room":"lobby","id":7}`},
		{appendJSONGap(nil, "lobby", 3, 9), `{"type":"gap","room":"lobby","after":3,"first":9}`},
		{appendJSONError(nil, codeTooLong, "too long"), `{"type":"error","code":"too_long","text":"too long"}`},
		{appendJSONHistory(nil, "lobby", "join", []Message{*m}, true, false), `{"type":"history","room":"lobby","reason":"join","complete":true,"more":false,"messages":[{"id":42,"room":"lobby","user":"alice","text":"hello","ts":"2026-11-22T10:00:06.002Z"}]}`},
		{appendJSONHistory(nil, "lobby", "before", nil, true, true), `{"type":"history","room":"lobby","reason":"before","complete":true,"more":true,"messages":[]}`},
		{appendPlainMessage(nil, "alice", "hello"), "alice: hello"},
		{appendPlainNotice(nil, "alice joined"), "* alice joined"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
		if tc.want[0] == '{' && !json.Valid(tc.got) {
			t.Errorf("invalid JSON: %s", tc.got)
		}
	}
}

func TestDecodeClientEvent(t *testing.T) {
	const none = ^uint64(0) // field absent
	for _, tc := range []struct {
		in      string
		ok      bool
		typ     string
		text    string
		before  uint64
		after   uint64
		limitIn int
	}{
		{`{"type":"message","text":"hi"}`, true, "message", "hi", none, none, 0},
		{`{"type":"message","text":""}`, true, "message", "", none, none, 0},
		{`{"type":"history","before":41,"limit":10}`, true, "history", "", 41, none, 10},
		{`{"type":"history"}`, true, "history", "", none, none, 0},
		{`{"type":"history","after":7,"limit":3}`, true, "history", "", none, 7, 3},
		{`{"type":"history","after":0}`, true, "history", "", none, 0, 0},
		{`{"type":"history","before":9,"after":7}`, false, "", "", 0, 0, 0},
		{`{"type":"history","before":0,"after":0}`, false, "", "", 0, 0, 0},
		{`{"type":"history","after":-1}`, false, "", "", 0, 0, 0},
		{`{"type":"message"}`, false, "", "", 0, 0, 0},
		{`{"type":"history","limit":-1}`, false, "", "", 0, 0, 0},
		{`{"type":"dance"}`, false, "", "", 0, 0, 0},
		{`{"text":"hi"}`, false, "", "", 0, 0, 0},
		{`hello`, false, "", "", 0, 0, 0},
		{`["message"]`, false, "", "", 0, 0, 0},
		{`{"type":"history","before":-3}`, false, "", "", 0, 0, 0},
	} {
		ev, err := decodeClientEvent([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("decode(%s) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		get := func(p *uint64) uint64 {
			if p == nil {
				return none
			}
			return *p
		}
		if ev.Type != tc.typ || get(ev.Before) != tc.before || get(ev.After) != tc.after || ev.Limit != tc.limitIn || (ev.Text != nil && *ev.Text != tc.text) {
			t.Errorf("decode(%s) = %+v", tc.in, ev)
		}
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(10, 3)
	for i := range 3 {
		if !b.take(t0) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if b.take(t0) {
		t.Fatal("4th message in the same instant accepted with burst 3")
	}
	if !b.take(t0.Add(100 * time.Millisecond)) {
		t.Fatal("no token after 1/rate")
	}
	if b.take(t0.Add(150 * time.Millisecond)) {
		t.Fatal("half a token accepted")
	}
	// Long idle refills to burst only.
	t1 := t0.Add(time.Hour)
	for i := range 3 {
		if !b.take(t1) {
			t.Fatalf("refilled token %d refused", i)
		}
	}
	if b.take(t1) {
		t.Fatal("bucket refilled beyond burst")
	}
	if !b.shouldNotify(t1) || b.shouldNotify(t1.Add(500*time.Millisecond)) || !b.shouldNotify(t1.Add(1100*time.Millisecond)) {
		t.Fatal("notices not limited to one per second")
	}
	off := newBucket(-1, 1)
	for range 1000 {
		if !off.take(t0) {
			t.Fatal("disabled flood control refused a message")
		}
	}
}

// testLimits returns cfg with the settings New requires that cfg leaves
// at zero (the limits and the default room) set to the built-in
// config.toml's values. It is chattest.Limits for the tests that must stay
// in package chat because they read withDefaults' result: they cannot
// import chattest, which imports this package.
func testLimits(cfg Config) Config {
	cfg.MaxConnections = cmp.Or(cfg.MaxConnections, 10000)
	cfg.MaxNameLength = cmp.Or(cfg.MaxNameLength, 24)
	cfg.MaxRooms = cmp.Or(cfg.MaxRooms, 1000)
	cfg.MaxTextBytes = cmp.Or(cfg.MaxTextBytes, 4096)
	cfg.APILimit = cmp.Or(cfg.APILimit, 500)
	cfg.DefaultRoom = cmp.Or(cfg.DefaultRoom, "lobby")
	return cfg
}

// TestConfigMeansWhatItSays: Config has no defaults of its own (the
// built-in config.toml holds them): a zero limit is refused, a zero
// FloodRate, Replay or AnnounceInterval means off, and only the fields
// that are not settings are filled in.
func TestConfigMeansWhatItSays(t *testing.T) {
	if _, err := (Config{}).withDefaults(); err == nil {
		t.Fatal("the zero Config was accepted: it has no limits")
	}
	cfg, err := testLimits(Config{}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FloodRate != 0 || cfg.FloodBurst != 0 || cfg.Replay != 0 || cfg.AnnounceInterval != 0 ||
		cfg.AnnounceBatchMembers != 0 || cfg.MaxPending != defaultMaxPending || cfg.Logger == nil ||
		cfg.WS.MaxMessageBytes != 0 || cfg.WS.CheckOrigin == nil ||
		strings.Join(cfg.WS.Subprotocols, ",") != "moonchat.v1,chat" {
		t.Fatalf("zero settings changed: %+v", cfg)
	}
	for name, set := range map[string]func(*Config){
		"no max connections":     func(c *Config) { c.MaxConnections = 0 },
		"no default room":        func(c *Config) { c.DefaultRoom = "" },
		"no max name length":     func(c *Config) { c.MaxNameLength = 0 },
		"no max rooms":           func(c *Config) { c.MaxRooms = 0 },
		"no max text bytes":      func(c *Config) { c.MaxTextBytes = 0 },
		"no api limit":           func(c *Config) { c.APILimit = 0 },
		"bad default room":       func(c *Config) { c.DefaultRoom = "no spaces" },
		"short max name length":  func(c *Config) { c.MaxNameLength = 3 },
		"negative flood rate":    func(c *Config) { c.FloodRate = -1 },
		"NaN flood rate":         func(c *Config) { c.FloodRate = math.NaN() },
		"flood rate, no burst":   func(c *Config) { c.FloodRate = 1 },
		"negative replay":        func(c *Config) { c.Replay = -1 },
		"replay over api limit":  func(c *Config) { c.Replay, c.APILimit = 100, 20 },
		"negative batch members": func(c *Config) { c.AnnounceBatchMembers = -1 },
		"negative interval":      func(c *Config) { c.AnnounceInterval = -time.Second },
		"origin without scheme":  func(c *Config) { c.AllowedOrigins = []string{"example.com"} },
		"origin with a path":     func(c *Config) { c.AllowedOrigins = []string{"https://example.com/path"} },
		"origin, inner wildcard": func(c *Config) { c.AllowedOrigins = []string{"https://chat.*.example.com"} },
		"origin, port wildcard":  func(c *Config) { c.AllowedOrigins = []string{"http://localhost:*"} },
		"origin with user info":  func(c *Config) { c.AllowedOrigins = []string{"https://u@example.com"} },
	} {
		bad := testLimits(Config{})
		set(&bad)
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: withDefaults(%+v) accepted", name, bad)
		}
	}
}

func TestOriginChecker(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		origin  string
		host    string
		ok      bool
	}{
		{nil, "", "chat.example.com", true},
		{nil, "http://chat.example.com", "chat.example.com", true},
		{nil, "http://chat.example.com:80", "chat.example.com", true},
		{nil, "https://chat.example.com", "chat.example.com", false}, // an https page, but the request came over http
		{nil, "http://chat.example.com:8080", "chat.example.com", false},
		{nil, "https://evil.example", "chat.example.com", false},
		{nil, "null", "chat.example.com", false},
		{[]string{"*"}, "https://evil.example", "chat.example.com", true},
		{[]string{"https://app.example.org"}, "https://app.example.org", "chat.example.com", true},
		{[]string{"https://app.example.org"}, "https://APP.example.org", "chat.example.com", true},
		{[]string{"https://app.example.org"}, "http://app.example.org", "chat.example.com", false},
		{[]string{"https://app.example.org"}, "https://app.example.org:8443", "chat.example.com", false},
		{[]string{"http://localhost:3000"}, "http://localhost:3000", "127.0.0.1:8080", true},
		{[]string{"https://*.example.org"}, "https://a.b.example.org", "chat.example.com", true},
		{[]string{"https://*.example.org"}, "https://example.org", "chat.example.com", false},
		{[]string{"https://*.example.org"}, "https://evilexample.org", "chat.example.com", false},
		{[]string{"https://*.example.org"}, "https://a.example.org:8443", "chat.example.com", false},
		{[]string{"https://*.example.org:8443"}, "https://a.example.org:8443", "chat.example.com", true},
		{[]string{"https://*.example.org"}, "https://a.example.org.evil.example", "chat.example.com", false},
		// A default port written out matches the Origin that omits it, and back.
		{[]string{"https://chat.example.com:443"}, "https://chat.example.com", "chat.example.org", true},
		{[]string{"https://chat.example.com"}, "https://chat.example.com:443", "chat.example.org", true},
		{[]string{"http://chat.example.com:80"}, "http://chat.example.com", "chat.example.org", true},
		{[]string{"https://chat.example.com:80"}, "https://chat.example.com", "chat.example.org", false},
	} {
		check := originChecker(tc.allowed)
		r := httptest.NewRequest("GET", "http://"+tc.host+"/chat", nil)
		r.Host = tc.host
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := check(r); got != tc.ok {
			t.Errorf("allowed %v, Origin %q, Host %q: got %v, want %v", tc.allowed, tc.origin, tc.host, got, tc.ok)
		}
	}
}

func TestCloseReason(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	got := closeReason(long)
	if len(got) > 123 || !strings.HasPrefix(long, got) || len(got) < 121 {
		t.Fatalf("closeReason cut to %d bytes", len(got))
	}
	if closeReason("short") != "short" {
		t.Fatal("short reason changed")
	}
}

func TestTrimNewline(t *testing.T) {
	for in, want := range map[string]string{"hi\n": "hi", "hi\r\n": "hi", "hi": "hi", "\n": "", "a\n\n": "a\n", "": ""} {
		if got := trimNewline([]byte(in)); got != want {
			t.Errorf("trimNewline(%q) = %q, want %q", in, got, want)
		}
	}
}
