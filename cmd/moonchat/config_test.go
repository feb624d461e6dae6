package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/defaults"
)

// documentedDefaults is the table of BRIEF.md / config.toml comments. The
// test below proves that the embedded config.toml says exactly this, so the
// shipped file, the built-in defaults and the docs cannot drift apart.
func documentedDefaults() *Config {
	return &Config{
		Server: ServerConfig{
			Listen:           "127.0.0.1:8080",
			AllowedOrigins:   []string{},
			Hosts:            []string{},
			MaxMessageBytes:  65536,
			MaxConnections:   10000,
			HandshakeTimeout: Duration(10 * time.Second),
			PingInterval:     Duration(30 * time.Second),
			PingTimeout:      Duration(10 * time.Second),
			IdleTimeout:      0,
			WriteTimeout:     Duration(10 * time.Second),
			MaxQueueBytes:    1048576,
			CloseTimeout:     Duration(5 * time.Second),
			ShutdownTimeout:  Duration(5 * time.Second),
			LegacyHixie76:    false,
			Pprof:            "",

			Compression:          "on",
			CompressionThreshold: 64,

			MaxConnectionsPerAddress: 100,
			HandshakeRate:            10,
			HandshakeBurst:           100,
			LimitsExempt:             []string{"127.0.0.1", "::1"},
			TrustedProxies:           []string{},
			ForwardedHeader:          "X-Forwarded-For",

			ACMEDomains: []string{},
		},
		Chat: ChatConfig{
			DefaultRoom:          "lobby",
			MaxNameLength:        24,
			MaxRooms:             1000,
			FloodRate:            10,
			FloodBurst:           20,
			FloodRateAddr:        50,
			FloodBurstAddr:       100,
			FloodRateAccount:     10,
			FloodBurstAccount:    20,
			FloodStrikes:         50,
			FloodStrikeWindow:    Duration(10 * time.Second),
			DeleteOwnWindow:      Duration(15 * time.Minute),
			MaxTextBytes:         4096,
			AnnounceBatchMembers: 100,
			AnnounceInterval:     Duration(time.Second),
			Replay:               50,
			APILimit:             500,
		},
		Store: StoreConfig{
			Path:          "data/moonchat.db",
			MaxPerRoom:    0,
			MaxAge:        0,
			PruneInterval: Duration(time.Minute),
		},
		Scripting: ScriptingConfig{
			Dir:            "scripts",
			HookTimeout:    Duration(100 * time.Millisecond),
			Enabled:        true,
			OnFailure:      "refuse",
			MaxMemoryBytes: 64 << 20,
			Console:        true,
			Shadow:         []string{},
			DisableAfter:   20,
		},
		Auth: AuthConfig{
			Guests:        true,
			JWTSecret:     "",
			JWTPublicKeys: []string{},
			JWTIssuer:     "",
			JWTAudience:   "",
			RequireExp:    true,
			Leeway:        Duration(30 * time.Second),
			LoginTTL:      Duration(time.Hour),
			LoginMaxAge:   Duration(24 * time.Hour),
		},
		Admin: AdminConfig{},
		Cluster: ClusterConfig{
			Stream:         "moonchat",
			Replicas:       1,
			PublishTimeout: Duration(5 * time.Second),
		},
		Source: builtinSource,
	}
}

func TestEmbeddedDefaultsAreDocumented(t *testing.T) {
	got, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := documentedDefaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("embedded config.toml:\n got %+v\nwant %+v", got, want)
	}
	if err := validateConfig(got, "config.toml"); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// TestEveryKeyDocumented: each key line of the shipped file is preceded by
// a comment line (or belongs to a group under one comment).
func TestEveryKeyDocumented(t *testing.T) {
	lines := strings.Split(string(defaults.Config()), "\n")
	keys := 0
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		keys++
		prev := ""
		if i > 0 {
			prev = lines[i-1]
		}
		if !strings.HasPrefix(prev, "#") && !strings.Contains(prev, " = ") {
			t.Errorf("line %d %q: no comment above it", i+1, l)
		}
	}
	// BRIEF.md documents 29; [chat] announce_batch_members and
	// announce_interval came later (docs/protocol.md), then [scripting]
	// on_failure (issue 10.12), then [server] hosts (issue 10.15), then
	// the 11 keys of [auth] and the 3 of [admin] (issue 12), then the 6
	// per-address keys of [server], the 6 flood keys of [chat], the 5 TLS
	// keys of [server] and [scripting] max_memory_bytes (issue 13), then
	// [chat] delete_own_window (issue 14), then [scripting] console,
	// disable_after and shadow (issue 16).
	// And the 10 keys of [cluster] (issue 15).
	if keys != 81 {
		t.Errorf("%d keys in config.toml, want 81 (BRIEF.md's 29 + 2 announce keys + on_failure + hosts + 11 [auth] + 3 [admin] + 6 per-address + 6 flood + 5 TLS + max_memory_bytes + 2 compression + delete_own_window + console + disable_after + shadow + 10 [cluster])", keys)
	}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigOverlay(t *testing.T) {
	p := writeConfig(t, `
[server]
listen = "127.0.0.1:0"
allowed_origins = ["https://chat.example.com", "http://*.example.org:8080"]
ping_interval = "0s"
[chat]
flood_rate = 0.5
announce_batch_members = 2
announce_interval = "250ms"
[store]
path = "hist.db"
`)
	cfg, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	want := documentedDefaults()
	want.Source = p
	want.Server.Listen = "127.0.0.1:0"
	want.Server.AllowedOrigins = []string{"https://chat.example.com", "http://*.example.org:8080"}
	want.Server.PingInterval = 0
	want.Chat.FloodRate = 0.5
	want.Chat.AnnounceBatchMembers = 2
	want.Chat.AnnounceInterval = Duration(250 * time.Millisecond)
	want.Store.Path = filepath.Join(filepath.Dir(p), "hist.db")
	want.Scripting.Dir = filepath.Join(filepath.Dir(p), "scripts")
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigMissingFile(t *testing.T) {
	// An explicit -config that does not exist is an error...
	_, err := loadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing explicit file: err = %v", err)
	}
	// ...while no ./config.toml means the built-in defaults.
	t.Chdir(t.TempDir())
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != builtinSource || !reflect.DeepEqual(cfg, documentedDefaults()) {
		t.Fatalf("no config.toml: got %+v", cfg)
	}
	// A ./config.toml in the working directory is picked up.
	if err := os.WriteFile("config.toml", []byte("[chat]\ndefault_room = \"hall\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err = loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != "config.toml" || cfg.Chat.DefaultRoom != "hall" || cfg.Store.Path != "data/moonchat.db" {
		t.Fatalf("./config.toml: got %+v", cfg)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string // each must appear in the error text
	}{
		{"unknown key", "[chat]\nflod_rate = 3\n",
			[]string{"config.toml: unknown key [chat] flod_rate", "did you mean flood_rate?"}},
		{"unknown key no suggestion", "[store]\ncompression = true\n",
			[]string{"config.toml: unknown key [store] compression"}},
		{"unknown section", "[servre]\nlisten = \":1\"\n",
			[]string{"config.toml: unknown section [servre]", "did you mean server?"}},
		{"key outside a section", "listen = \":1\"\n",
			[]string{"config.toml: unknown section [listen]"}},
		{"section not a table", "server = 3\n",
			[]string{"config.toml: [server]: must be a table, got integer 3"}},
		{"case matters", "[server]\nListen = \":1\"\n",
			[]string{"unknown key [server] Listen", "did you mean listen?"}},
		{"nested table", "[server.tls]\ncert = \"x\"\n",
			[]string{"unknown key [server] tls"}},
		{"bad duration", "[server]\nping_interval = \"3x\"\n",
			[]string{`config.toml: [server] ping_interval: invalid duration "3x"`}},
		{"duration as number", "[server]\nping_interval = 30\n",
			[]string{`config.toml: [server] ping_interval: want a duration string such as "30s", got integer 30`}},
		{"negative duration", "[store]\nmax_age = \"-1h\"\n",
			[]string{`config.toml: [store] max_age: must not be negative, got "-1h0m0s"`}},
		{"zero timeout", "[scripting]\nhook_timeout = \"0s\"\n",
			[]string{`config.toml: [scripting] hook_timeout: must be positive`}},
		{"tiny max_memory_bytes", "[scripting]\nmax_memory_bytes = 1000\n",
			[]string{`config.toml: [scripting] max_memory_bytes: must be at least 1048576, got 1000`}},
		{"bad on_failure", "[scripting]\non_failure = \"skip\"\n",
			[]string{`config.toml: [scripting] on_failure: must be "refuse" or "deliver", got "skip"`}},
		{"bad number", "[server]\nmax_connections = \"many\"\n",
			[]string{`config.toml: [server] max_connections: want an integer, got string "many"`}},
		{"float for int", "[chat]\nmax_rooms = 1.5\n",
			[]string{`config.toml: [chat] max_rooms: want an integer, got float 1.5`}},
		{"negative number", "[store]\nmax_per_room = -1\n",
			[]string{`config.toml: [store] max_per_room: must be at least 0, got -1`}},
		{"zero connections", "[server]\nmax_connections = 0\n",
			[]string{`[server] max_connections: must be at least 1, got 0`}},
		{"replay over cap", "[chat]\nreplay = 501\n",
			[]string{`config.toml: [chat] replay: must be between 0 and 500, got 501`}},
		{"api_limit cap", "[chat]\napi_limit = 100000\n",
			[]string{`[chat] api_limit: must be between 1 and 10000, got 100000`}},
		{"replay moved", "[store]\nreplay = 20\n",
			[]string{`config.toml: [store] replay moved to [chat] replay`}},
		{"api_limit moved", "[store]\napi_limit = 20\n",
			[]string{`config.toml: [store] api_limit moved to [chat] api_limit`}},
		{"section in another case", "[Server]\nlisten = \":1\"\n",
			[]string{"config.toml: unknown section [Server]", "did you mean server?"}},
		{"unknown nested key", "[chat]\nflood.rate = 1\n",
			[]string{"config.toml: unknown key [chat] flood"}},
		{"array of tables", "[[server]]\nlisten = \":1\"\n",
			[]string{"config.toml: [server]: must be a table, got an array"}},
		{"every value problem at once", "[server]\nmax_connections = \"many\"\nping_interval = \"3x\"\nclose_timeout = 5\nmax_queue_bytes = 0\n",
			[]string{`[server] max_connections: want an integer, got string "many"`, `[server] ping_interval: invalid duration "3x"`,
				`[server] close_timeout: want a duration string such as "30s", got integer 5`, `[server] max_queue_bytes: must be at least 1, got 0`}},
		{"bool as string", "[scripting]\nenabled = \"yes\"\n",
			[]string{`config.toml: [scripting] enabled: want true or false, got string "yes"`}},
		{"bad port", "[server]\nlisten = \"127.0.0.1:70000\"\n",
			[]string{`config.toml: [server] listen: invalid port "70000"`}},
		{"no port", "[server]\nlisten = \"localhost\"\n",
			[]string{`config.toml: [server] listen: invalid address "localhost"`}},
		{"bad compression", "[server]\ncompression = \"yes\"\n",
			[]string{`config.toml: [server] compression: "yes": want "on" or "off"`}},
		{"negative compression threshold", "[server]\ncompression_threshold = -1\n",
			[]string{`config.toml: [server] compression_threshold`}},
		{"bad pprof", "[server]\npprof = \"6060\"\n",
			[]string{`config.toml: [server] pprof: invalid address "6060"`}},
		{"bad origin", "[server]\nallowed_origins = [\"chat.example.com\"]\n",
			[]string{`config.toml: [server] allowed_origins: invalid origin "chat.example.com"`}},
		{"origin with path", "[server]\nallowed_origins = [\"https://x.com/chat\"]\n",
			[]string{`[server] allowed_origins: invalid origin "https://x.com/chat"`}},
		{"star not alone", "[server]\nallowed_origins = [\"*\", \"https://x.com\"]\n",
			[]string{`[server] allowed_origins: "*" allows every origin: it must be the only entry`}},
		{"origins not strings", "[server]\nallowed_origins = [1]\n",
			[]string{`[server] allowed_origins: want an array of strings, got an array`}},
		{"negative per-address connections", "[server]\nmax_connections_per_address = -1\n",
			[]string{`config.toml: [server] max_connections_per_address: must be 0 (no limit) or more, got -1`}},
		{"handshake rate without burst", "[server]\nhandshake_rate = 2\nhandshake_burst = 0\n",
			[]string{`config.toml: [server] handshake_burst: must be at least 1 when handshake_rate is set, got 0`}},
		{"negative handshake rate", "[server]\nhandshake_rate = -2\n",
			[]string{`config.toml: [server] handshake_rate: must be 0 (no limit) or a positive number, got -2`}},
		{"exempt not a network", "[server]\nlimits_exempt = [\"localhost\"]\n",
			[]string{`config.toml: [server] limits_exempt: "localhost": want an IP address or a CIDR prefix`}},
		{"proxy not a network", "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
			[]string{`config.toml: [server] trusted_proxies: "10.0.0.0/33": want an IP address or a CIDR prefix`}},
		{"unknown forwarded header", "[server]\nforwarded_header = \"X-Real-IP\"\n",
			[]string{`config.toml: [server] forwarded_header: forwarding header "X-Real-IP": want "X-Forwarded-For" or "Forwarded"`}},
		{"per-address key misspelt", "[server]\nmax_conns_per_addr = 5\n",
			[]string{`config.toml: unknown key [server] max_conns_per_addr`}},
		{"host as URL", "[server]\nhosts = [\"https://chat.example.com\"]\n",
			[]string{`config.toml: [server] hosts: invalid host "https://chat.example.com": want name, name:port, *.domain, an IP address or "*"`}},
		{"host with bad port", "[server]\nhosts = [\"chat.example.com:99999\"]\n",
			[]string{`config.toml: [server] hosts: invalid host "chat.example.com:99999"`}},
		{"host star not alone", "[server]\nhosts = [\"*\", \"chat.example.com\"]\n",
			[]string{`config.toml: [server] hosts: "*" accepts any Host: it must be the only entry`}},
		{"bad default_room", "[chat]\ndefault_room = \"the lobby\"\n",
			[]string{`config.toml: [chat] default_room: invalid room name "the lobby"`}},
		{"empty default_room", "[chat]\ndefault_room = \"\"\n",
			[]string{`config.toml: [chat] default_room: invalid room name ""`}},
		{"long default_room", "[chat]\ndefault_room = \"" + strings.Repeat("a", 33) + "\"\n",
			[]string{`[chat] default_room: invalid room name`}},
		{"negative flood", "[chat]\nflood_rate = -1\n",
			[]string{`[chat] flood_rate: must be 0 (off) or a positive number, got -1`}},
		{"flood per address, no burst", "[chat]\nflood_burst_addr = 0\n",
			[]string{`[chat] flood_burst_addr: must be between 1 and 1000000, got 0`}},
		{"flood per account NaN", "[chat]\nflood_rate_account = nan\n",
			[]string{`[chat] flood_rate_account: must be 0 (off) or a positive number, got NaN`}},
		{"flood strikes without window", "[chat]\nflood_strike_window = \"0s\"\n",
			[]string{`[chat] flood_strike_window: must be positive`}},
		{"negative delete_own_window", "[chat]\ndelete_own_window = \"-1s\"\n",
			[]string{`[chat] delete_own_window: must not be negative`}},
		{"delete.lua's old option", "[scripts.delete]\ndelete_own_window = \"2h\"\n",
			[]string{`[scripts.delete] delete_own_window: moved to [chat] delete_own_window`}},
		{"negative flood strikes", "[chat]\nflood_strikes = -1\n",
			[]string{`[chat] flood_strikes: must be at least 0, got -1`}},
		{"text over message", "[chat]\nmax_text_bytes = 70000\n",
			[]string{`[chat] max_text_bytes: must be between 1 and 65536, got 70000`}},
		{"zero announce members", "[chat]\nannounce_batch_members = 0\n",
			[]string{`config.toml: [chat] announce_batch_members: must be at least 1, got 0`}},
		{"negative announce members", "[chat]\nannounce_batch_members = -5\n",
			[]string{`[chat] announce_batch_members: must be at least 1, got -5`}},
		{"negative announce interval", "[chat]\nannounce_interval = \"-1s\"\n",
			[]string{`config.toml: [chat] announce_interval: must not be negative, got "-1s"`}},
		{"bad announce interval", "[chat]\nannounce_interval = \"soon\"\n",
			[]string{`[chat] announce_interval: invalid duration "soon"`}},
		{"announce interval not a string", "[chat]\nannounce_interval = 1\n",
			[]string{`[chat] announce_interval:`}},
		{"short admin token", "[admin]\ntoken = \"short\"\n",
			[]string{`config.toml: [admin] token: must be empty (admin API off) or at least 32 characters, got 5`}},
		{"admin token with a space", "[admin]\ntoken = \"" + strings.Repeat("a", 20) + " " + strings.Repeat("b", 20) + "\"\n",
			[]string{`config.toml: [admin] token: must not contain spaces`}},
		{"protect_metrics without token", "[admin]\nprotect_metrics = true\n",
			[]string{`config.toml: [admin] protect_metrics: true needs [admin] token`}},
		{"bad admin listen", "[admin]\nlisten = \"9090\"\n",
			[]string{`config.toml: [admin] listen: invalid address "9090"`}},
		{"admin listen on the main port", "[server]\nlisten = \"127.0.0.1:8080\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n",
			[]string{`config.toml: [admin] listen: must differ from [server] listen`}},
		{"unknown admin key", "[admin]\ntokn = \"x\"\n",
			[]string{"config.toml: unknown key [admin] tokn", "did you mean token?"}},
		{"guest_prefix with a space", "[auth]\nguest_prefix = \"a guest\"\n",
			[]string{`config.toml: [auth] guest_prefix: "a guest": no spaces`}},
		{"long guest_prefix", "[auth]\nguest_prefix = \"" + strings.Repeat("g", 17) + "\"\n",
			[]string{`config.toml: [auth] guest_prefix: must be at most 16 characters`}},
		{"zero login_ttl", "[auth]\nlogin_ttl = \"0s\"\n",
			[]string{`config.toml: [auth] login_ttl: must be positive`}},
		{"login_ttl too long", "[auth]\nlogin_ttl = \"48h\"\nlogin_max_age = \"72h\"\n",
			[]string{`config.toml: [auth] login_ttl: must be at most 24h0m0s`}},
		{"login_max_age under login_ttl", "[auth]\nlogin_ttl = \"2h\"\nlogin_max_age = \"1h\"\n",
			[]string{`config.toml: [auth] login_max_age: must be at least login_ttl (2h0m0s), got 1h0m0s`}},
		{"expose_credentials not a bool", "[auth]\nexpose_credentials = \"yes\"\n",
			[]string{`config.toml: [auth] expose_credentials: want true or false, got string "yes"`}},
		{"syntax error", "[server\nlisten = 1\n",
			[]string{"config.toml: line 2: expected"}},
		{"every problem reported", "[server]\nping_interval = \"3x\"\nmax_connections = -2\n[chat]\nflod_rate = 1\n",
			[]string{`[server] ping_interval: invalid duration "3x"`, "[server] max_connections: must be at least 1",
				"unknown key [chat] flod_rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			if err := os.WriteFile("config.toml", []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig("")
			wantConfigError(t, err, tt.toml, tt.want)
		})
	}
}

// wantConfigError checks that loading toml failed with an ErrConfig whose
// text contains every one of want.
func wantConfigError(t *testing.T, err error, toml string, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error for:\n%s", toml)
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error is not ErrConfig: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.D() != 90*time.Second {
		t.Fatalf("got %v, %v", d.D(), err)
	}
	b, _ := d.MarshalText()
	if string(b) != "1m30s" {
		t.Fatalf("MarshalText = %q", b)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil || !strings.Contains(err.Error(), `invalid duration "soon"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestChatConfigOnePath (issue 11.3): every key the chat server uses goes
// from its one Config field to its one chat.Config field unchanged: 0 in
// config.toml ("off", "none", "never") is 0 in chat.Config, which means the
// same there, and chat.New accepts the result; the WebSocket engine gets
// every [server] value, so none of its own defaults applies to serve.
func TestChatConfigOnePath(t *testing.T) {
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []bool{false, true} {
		if off {
			cfg.Chat.FloodRate, cfg.Chat.Replay, cfg.Chat.AnnounceInterval = 0, 0, 0
			cfg.Chat.FloodRateAddr, cfg.Chat.FloodRateAccount, cfg.Chat.FloodStrikes = 0, 0, 0
			cfg.Server.PingInterval, cfg.Server.IdleTimeout = 0, 0
		}
		c := chatConfig(cfg, slog.New(slog.DiscardHandler))
		ch, s := &cfg.Chat, &cfg.Server
		if c.FloodRate != ch.FloodRate || c.FloodBurst != ch.FloodBurst || c.Replay != ch.Replay ||
			c.FloodRateAddr != ch.FloodRateAddr || c.FloodBurstAddr != ch.FloodBurstAddr ||
			c.FloodRateAccount != ch.FloodRateAccount || c.FloodBurstAccount != ch.FloodBurstAccount ||
			c.FloodStrikes != ch.FloodStrikes || c.FloodStrikeWindow != ch.FloodStrikeWindow.D() || c.DeleteOwnWindow != ch.DeleteOwnWindow.D() ||
			c.APILimit != ch.APILimit || c.AnnounceBatchMembers != ch.AnnounceBatchMembers ||
			c.AnnounceInterval != ch.AnnounceInterval.D() || c.DefaultRoom != ch.DefaultRoom ||
			c.MaxNameLength != ch.MaxNameLength || c.MaxRooms != ch.MaxRooms || c.MaxTextBytes != ch.MaxTextBytes ||
			c.MaxConnections != s.MaxConnections {
			t.Errorf("off=%v: [chat] %+v\nbecame %+v", off, *ch, c)
		}
		w := c.WS
		if w.MaxMessageBytes != int64(s.MaxMessageBytes) || w.HandshakeTimeout != s.HandshakeTimeout.D() ||
			w.PingInterval != s.PingInterval.D() || w.PingTimeout != s.PingTimeout.D() ||
			w.IdleTimeout != s.IdleTimeout.D() || w.WriteTimeout != s.WriteTimeout.D() ||
			w.MaxQueueBytes != s.MaxQueueBytes || w.CloseTimeout != s.CloseTimeout.D() || w.Hixie76 != s.LegacyHixie76 ||
			w.Compression != (s.Compression == "on") || w.CompressionThreshold != s.CompressionThreshold {
			t.Errorf("off=%v: [server] %+v\nbecame ws %+v", off, *s, w)
		}
		srv, err := chat.New(c, nil, nil)
		if err != nil {
			t.Fatalf("off=%v: chat.New: %v", off, err)
		}
		if err := srv.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAdminAuthKeysMapToChatConfig (issue 12): [auth] guest_prefix and
// the [admin] keys reach chat.Config, each to its one field.
func TestAdminAuthKeysMapToChatConfig(t *testing.T) {
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c := chatConfig(cfg, slog.New(slog.DiscardHandler)); c.GuestPrefix != "" || c.AdminToken != "" || c.AdminSeparate || c.MetricsNeedToken {
		t.Errorf("defaults: %+v", c)
	}
	cfg.Auth.GuestPrefix = "guest-"
	cfg.Admin = AdminConfig{Token: strings.Repeat("t", 32), Listen: "127.0.0.1:0", ProtectMetrics: true}
	c := chatConfig(cfg, slog.New(slog.DiscardHandler))
	if c.GuestPrefix != "guest-" || c.AdminToken != cfg.Admin.Token || !c.AdminSeparate || !c.MetricsNeedToken {
		t.Errorf("set: %+v", c)
	}
}

// [scripting] on_failure reaches the chat server: "refuse" (the default)
// fails closed, "deliver" carries on.
func TestOnFailureMapsToChatConfig(t *testing.T) {
	cfg, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if chatConfig(cfg, nil).DeliverOnHookFailure {
		t.Fatal("default on_failure delivers; want refuse")
	}
	cfg.Scripting.OnFailure = "deliver"
	if !chatConfig(cfg, nil).DeliverOnHookFailure {
		t.Fatal(`on_failure = "deliver" not passed to the chat server`)
	}
}
