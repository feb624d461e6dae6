package main

import (
	"fmt"
	"time"
)

// The keys and their defaults are documented in defaults/config.toml,
// which is embedded (defaults.Config) and parsed before any user file: the
// built-in file is the one source of truth for the defaults, so there are
// no default values in Go code. Each key has one field here and one
// consumer (serve.go hands it on unchanged). Loading is in config_load.go,
// the checks TOML types cannot express in config_validate.go.

// Config is the whole of config.toml.
type Config struct {
	Server    ServerConfig    `toml:"server"`
	Chat      ChatConfig      `toml:"chat"`
	Store     StoreConfig     `toml:"store"`
	Scripting ScriptingConfig `toml:"scripting"`
	Auth      AuthConfig      `toml:"auth"`
	Admin     AdminConfig     `toml:"admin"`
	Cluster   ClusterConfig   `toml:"cluster"` // cluster_config.go
	// Scripts holds the scripts' own settings: [scripts.NAME] is read by
	// NAME.lua as chat.options (scripting.ScriptOptions). Its keys are the
	// scripts', so any key is allowed; a table for no script is a warning
	// of the scripting engine, not a config error (the script may come
	// later).
	Scripts map[string]map[string]any `toml:"scripts"`
	// Rooms holds the room permission rules: [rooms."PATTERN"] with the
	// keys read, post, moderate and history (config_rooms.go). Like
	// Scripts, its table names are free (patterns), so it is a map checked
	// by buildRoomRules (validateConfig); its one consumer is chatConfig.
	Rooms map[string]map[string]any `toml:"rooms"`

	// Source says where the config came from: a file path, or
	// builtinSource for the embedded defaults. Not a key.
	Source string `toml:"-"`
}

// ServerConfig is the [server] table: the listener and the WebSocket engine.
type ServerConfig struct {
	Listen           string   `toml:"listen"`
	AllowedOrigins   []string `toml:"allowed_origins"`
	Hosts            []string `toml:"hosts"`
	MaxMessageBytes  int      `toml:"max_message_bytes"`
	MaxConnections   int      `toml:"max_connections"`
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	PingInterval     Duration `toml:"ping_interval"`
	PingTimeout      Duration `toml:"ping_timeout"`
	IdleTimeout      Duration `toml:"idle_timeout"`
	WriteTimeout     Duration `toml:"write_timeout"`
	MaxQueueBytes    int      `toml:"max_queue_bytes"`
	CloseTimeout     Duration `toml:"close_timeout"`
	ShutdownTimeout  Duration `toml:"shutdown_timeout"`
	LegacyHixie76    bool     `toml:"legacy_hixie76"`
	// permessage-deflate (RFC 7692): "on" or "off", and the size below
	// which a message goes uncompressed (0 = compress every message).
	Compression          string `toml:"compression"`
	CompressionThreshold int    `toml:"compression_threshold"`
	Pprof                string `toml:"pprof"`
	// Per-address limits and reverse proxies (addrlimits.go).
	MaxConnectionsPerAddress int      `toml:"max_connections_per_address"`
	HandshakeRate            float64  `toml:"handshake_rate"`
	HandshakeBurst           int      `toml:"handshake_burst"`
	LimitsExempt             []string `toml:"limits_exempt"`
	TrustedProxies           []string `toml:"trusted_proxies"`
	ForwardedHeader          string   `toml:"forwarded_header"`
	// TLS (tls.go): a certificate and key in PEM files, reloaded on
	// SIGHUP and when they change; or certificates from an ACME CA
	// (Let's Encrypt) for ACMEDomains. At most one of the two.
	TLSCert       string   `toml:"tls_cert"`
	TLSKey        string   `toml:"tls_key"`
	ACMEDomains   []string `toml:"acme_domains"`
	ACMEEmail     string   `toml:"acme_email"`
	ACMEDirectory string   `toml:"acme_directory"`
}

// ChatConfig is the [chat] table: rooms, names, flood control, how big
// rooms announce joins and leaves, and how much history members get.
type ChatConfig struct {
	DefaultRoom          string   `toml:"default_room"`
	MaxNameLength        int      `toml:"max_name_length"`
	MaxRooms             int      `toml:"max_rooms"`
	FloodRate            float64  `toml:"flood_rate"`
	FloodBurst           int      `toml:"flood_burst"`
	FloodRateAddr        float64  `toml:"flood_rate_addr"`
	FloodBurstAddr       int      `toml:"flood_burst_addr"`
	FloodRateAccount     float64  `toml:"flood_rate_account"`
	FloodBurstAccount    int      `toml:"flood_burst_account"`
	FloodStrikes         int      `toml:"flood_strikes"`
	FloodStrikeWindow    Duration `toml:"flood_strike_window"`
	DeleteOwnWindow      Duration `toml:"delete_own_window"` // chat.Config.DeleteOwnWindow; 0 = never
	MaxTextBytes         int      `toml:"max_text_bytes"`
	AnnounceBatchMembers int      `toml:"announce_batch_members"`
	AnnounceInterval     Duration `toml:"announce_interval"`
	Replay               int      `toml:"replay"`
	APILimit             int      `toml:"api_limit"`
}

// StoreConfig is the [store] table: the history file and its retention.
// (replay and api_limit moved to [chat], which uses them: movedKeys.)
type StoreConfig struct {
	Path          string   `toml:"path"`
	MaxPerRoom    int      `toml:"max_per_room"`
	MaxAge        Duration `toml:"max_age"`
	PruneInterval Duration `toml:"prune_interval"`
}

// ScriptingConfig is the [scripting] table: the Lua hooks.
type ScriptingConfig struct {
	Dir         string   `toml:"dir"`
	HookTimeout Duration `toml:"hook_timeout"`
	Enabled     bool     `toml:"enabled"`
	// OnFailure is what a hook that did not complete means: "refuse"
	// (fail closed) or "deliver" (chat.Config.DeliverOnHookFailure).
	OnFailure string `toml:"on_failure"`
	// MaxMemoryBytes bounds what one script call may allocate and what
	// the scripts may keep (scripting.Options.MaxMemory).
	MaxMemoryBytes int `toml:"max_memory_bytes"`
	// Console allows `moonchat console` on the local socket
	// (console_server.go).
	Console bool `toml:"console"`
	// Shadow names scripts of Dir loaded as shadow scripts: decisions
	// logged and counted, never applied (scripting.Options.Shadow).
	Shadow []string `toml:"shadow"`
	// DisableAfter is how many failures in a row disable a handler until
	// the next reload; 0 = never (scripting.Options.DisableAfter, whose
	// "never" is negative).
	DisableAfter int `toml:"disable_after"`
}

// Duration is a time.Duration written in config.toml as a string such as
// "30s" (time.ParseDuration syntax).
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"500ms\", \"30s\", \"5m\")", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// AuthConfig is the [auth] table: who may connect (guests, JSON Web
// Tokens, the connect and login scripts). Its consumers are
// newAuthenticator (auth.go) and newLogin (login.go); GuestPrefix goes to
// chat.Config.
type AuthConfig struct {
	Guests        bool     `toml:"guests"`
	JWTSecret     string   `toml:"jwt_secret"`
	JWTPublicKeys []string `toml:"jwt_public_keys"`
	JWTIssuer     string   `toml:"jwt_issuer"`
	JWTAudience   string   `toml:"jwt_audience"`
	RequireExp    bool     `toml:"require_exp"`
	Leeway        Duration `toml:"leeway"`
	// ExposeCredentials lets the connect script see the cookie and
	// authorization headers.
	ExposeCredentials bool   `toml:"expose_credentials"`
	GuestPrefix       string `toml:"guest_prefix"`
	// LoginTTL is the lifetime of a token minted by POST /api/login or
	// renewed by POST /api/token; LoginMaxAge how long after the login
	// renewals are still given.
	LoginTTL    Duration `toml:"login_ttl"`
	LoginMaxAge Duration `toml:"login_max_age"`
}

// AdminConfig is the [admin] table: the admin API's bearer token and
// where the admin API, /metrics and pprof are served. Its consumers are
// chatConfig (token, protect_metrics, whether listen is set) and
// server.open (listen).
type AdminConfig struct {
	Token          string `toml:"token"`
	Listen         string `toml:"listen"`
	ProtectMetrics bool   `toml:"protect_metrics"`
}
