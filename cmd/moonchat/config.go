package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/ws"
	"github.com/moonchat/moonchat/defaults"
)

// The keys and their defaults are documented in defaults/config.toml,
// which is embedded (defaults.Config) and parsed before any user file: the
// built-in file is the one source of truth for the defaults, so there are
// no default values in this file.

// Config is the whole of config.toml.
type Config struct {
	Server    ServerConfig    `toml:"server"`
	Chat      ChatConfig      `toml:"chat"`
	Store     StoreConfig     `toml:"store"`
	Scripting ScriptingConfig `toml:"scripting"`

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
	Pprof            string   `toml:"pprof"`
}

// ChatConfig is the [chat] table: rooms, names, flood control and how big
// rooms announce joins and leaves.
type ChatConfig struct {
	DefaultRoom          string   `toml:"default_room"`
	MaxNameLength        int      `toml:"max_name_length"`
	MaxRooms             int      `toml:"max_rooms"`
	FloodRate            float64  `toml:"flood_rate"`
	FloodBurst           int      `toml:"flood_burst"`
	MaxTextBytes         int      `toml:"max_text_bytes"`
	AnnounceBatchMembers int      `toml:"announce_batch_members"`
	AnnounceInterval     Duration `toml:"announce_interval"`
}

// applyAnnounce maps announce_batch_members and announce_interval onto c.
// config.toml says "0s" for "never coalesce" where chat.Config says
// negative (its zero means the default).
func (cc *ChatConfig) applyAnnounce(c *chat.Config) {
	c.AnnounceBatchMembers = cc.AnnounceBatchMembers
	c.AnnounceInterval = cc.AnnounceInterval.D()
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = -1
	}
}

// StoreConfig is the [store] table: the history file and its retention.
type StoreConfig struct {
	Path          string   `toml:"path"`
	Replay        int      `toml:"replay"`
	MaxPerRoom    int      `toml:"max_per_room"`
	MaxAge        Duration `toml:"max_age"`
	PruneInterval Duration `toml:"prune_interval"`
	APILimit      int      `toml:"api_limit"`
}

// ScriptingConfig is the [scripting] table: the Lua hooks.
type ScriptingConfig struct {
	Dir         string   `toml:"dir"`
	HookTimeout Duration `toml:"hook_timeout"`
	Enabled     bool     `toml:"enabled"`
	// OnFailure is what a hook that did not complete means: "refuse"
	// (fail closed) or "deliver" (chat.Config.DeliverOnHookFailure).
	OnFailure string `toml:"on_failure"`
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

// builtinSource is Config.Source for the embedded defaults.
const builtinSource = "built-in defaults"

// defaultConfigFile is read from the working directory when no -config is given.
const defaultConfigFile = "config.toml"

// ErrConfig marks every error about the contents of a config file.
var ErrConfig = errors.New("invalid config")

// configError is one problem in a config file, naming the key.
type configError struct {
	file string // as the user named it, e.g. "config.toml"
	key  string // "[server] ping_interval", "[chat]" or "" for syntax errors
	msg  string
	// syntax is set when the file is not valid TOML: nothing was decoded.
	syntax bool
}

func (e *configError) Error() string {
	if e.key == "" {
		return e.file + ": " + e.msg
	}
	return e.file + ": " + e.key + ": " + e.msg
}

func (e *configError) Is(target error) bool { return target == ErrConfig }

// builtinFile names the embedded defaults/config.toml in messages.
const builtinFile = "built-in defaults/config.toml"

// defaultConfig parses the embedded defaults/config.toml.
func defaultConfig() (*Config, error) {
	cfg := &Config{Source: builtinSource}
	if err := decodeConfig(cfg, builtinFile, defaults.Config()); err != nil {
		return nil, fmt.Errorf("built-in defaults are broken: %w", err)
	}
	return cfg, nil
}

// loadConfig returns the configuration to run with: the built-in defaults,
// overlaid with path when it is not empty, or with ./config.toml when path
// is empty and that file exists. Relative store.path and scripting.dir are
// relative to the config file's directory (config.toml says so), so they are
// joined with it here and stay right whatever the working directory.
func loadConfig(path string) (*Config, error) {
	cfg, err := defaultConfig()
	if err != nil {
		return nil, err
	}
	explicit := path != ""
	if !explicit {
		path = defaultConfigFile
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
	case !explicit && errors.Is(err, os.ErrNotExist):
		return cfg, validateConfig(cfg, builtinFile)
	default:
		return nil, fmt.Errorf("read config: %w", err)
	}
	err = decodeConfig(cfg, path, data)
	var pe *configError
	if errors.As(err, &pe) && pe.syntax {
		return nil, err // nothing was decoded: validating would say nothing useful
	}
	// Keys that failed to decode kept their defaults, so validating the
	// rest still finds real problems: report everything at once.
	if err := errors.Join(err, validateConfig(cfg, path)); err != nil {
		return nil, err
	}
	cfg.Source = path
	if dir := filepath.Dir(path); dir != "." {
		if cfg.Store.Path != "" && !filepath.IsAbs(cfg.Store.Path) {
			cfg.Store.Path = filepath.Join(dir, cfg.Store.Path)
		}
		if cfg.Scripting.Dir != "" && !filepath.IsAbs(cfg.Scripting.Dir) {
			cfg.Scripting.Dir = filepath.Join(dir, cfg.Scripting.Dir)
		}
	}
	return cfg, nil
}

// decodeConfig overlays the TOML document data onto cfg. Each key is
// decoded on its own so that every error names its key; unknown sections
// and keys are errors. All problems are reported (joined), in file order.
func decodeConfig(cfg *Config, file string, data []byte) error {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &configError{file: file, msg: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message), syntax: true}
		}
		return &configError{file: file, msg: err.Error(), syntax: true}
	}

	root := reflect.ValueOf(cfg).Elem()
	sections := map[string]map[string]toml.Primitive{}
	bad := map[string]bool{} // sections already reported
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &configError{file: file, key: key, msg: fmt.Sprintf(format, args...)})
	}

	for _, key := range md.Keys() {
		sect := key[0]
		if bad[sect] {
			continue
		}
		sv, ok := fieldByTag(root, sect)
		if !ok {
			bad[sect] = true
			fail("", "unknown section [%s]%s", sect, suggest(sect, tagsOf(root.Type())))
			continue
		}
		keys, ok := sections[sect]
		if !ok {
			// (PrimitiveDecode into a map ignores a non-table value.)
			var raw any
			err := md.PrimitiveDecode(top[sect], &raw)
			if _, isTable := raw.(map[string]any); err == nil && !isTable {
				err = errors.New("not a table")
			}
			if err == nil {
				err = md.PrimitiveDecode(top[sect], &keys)
			}
			if err != nil {
				bad[sect] = true
				fail("["+sect+"]", "must be a table, got %s", describe(md, top[sect]))
				continue
			}
			sections[sect] = keys
		}
		if len(key) != 2 {
			continue // the section itself, or inside a key reported below
		}
		name := key[1]
		where := "[" + sect + "] " + name
		fv, ok := fieldByTag(sv, name)
		if !ok {
			fail("", "unknown key %s%s", where, suggest(name, tagsOf(sv.Type())))
			continue
		}
		prim := keys[name]
		if want := checkType(md, prim, fv.Type()); want != "" {
			fail(where, "want %s, got %s", want, describe(md, prim))
			continue
		}
		if err := md.PrimitiveDecode(prim, fv.Addr().Interface()); err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				fail(where, "%s", pe.Message)
			} else {
				fail(where, "%v", err)
			}
		}
	}
	return errors.Join(errs...)
}

// fieldByTag returns the field of struct v whose toml tag is exactly name.
func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag == name && tag != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagsOf(t reflect.Type) []string {
	var tags []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			tags = append(tags, tag)
		}
	}
	return tags
}

var durationType = reflect.TypeFor[Duration]()

// checkType reports what TOML type a field of type t needs when prim is not
// of it ("" when it fits), so the error says "want an integer" rather than
// a reflection message.
func checkType(md toml.MetaData, prim toml.Primitive, t reflect.Type) string {
	var raw any
	if err := md.PrimitiveDecode(prim, &raw); err != nil {
		return "" // let the typed decode report it
	}
	switch {
	case t == durationType:
		if _, ok := raw.(string); !ok {
			return `a duration string such as "30s"`
		}
	case t.Kind() == reflect.String:
		if _, ok := raw.(string); !ok {
			return "a string"
		}
	case t.Kind() == reflect.Bool:
		if _, ok := raw.(bool); !ok {
			return "true or false"
		}
	case t.Kind() == reflect.Int:
		if _, ok := raw.(int64); !ok {
			return "an integer"
		}
	case t.Kind() == reflect.Float64:
		switch raw.(type) {
		case int64, float64:
		default:
			return "a number"
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		arr, ok := raw.([]any)
		if !ok {
			return "an array of strings"
		}
		for _, e := range arr {
			if _, ok := e.(string); !ok {
				return "an array of strings"
			}
		}
	}
	return ""
}

// describe renders a TOML value for an error message: its type and value.
func describe(md toml.MetaData, prim toml.Primitive) string {
	var raw any
	if err := md.PrimitiveDecode(prim, &raw); err != nil {
		return "an invalid value"
	}
	switch v := raw.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to name
// when it is a plausible typo, else "".
func suggest(name string, candidates []string) string {
	best, bestD := "", 3 // at most 2 edits
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Limits that are not a matter of taste: beyond them something breaks.
const (
	maxRoomNameLen  = 32      // docs/protocol.md
	maxAPILimit     = 10000   // one history page must stay a sane size in memory
	maxMessageLimit = 1 << 30 // the engine keeps one message in memory
)

// validateConfig checks ranges and syntax that TOML types cannot express.
func validateConfig(cfg *Config, file string) error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &configError{file: file, key: key, msg: fmt.Sprintf(format, args...)})
	}
	atLeast := func(key string, v, lo int) {
		if v < lo {
			fail(key, "must be at least %d, got %d", lo, v)
		}
	}
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			fail(key, "must be between %d and %d, got %d", lo, hi, v)
		}
	}
	positive := func(key string, d Duration) {
		if d <= 0 {
			fail(key, "must be positive, got %q", d.D().String())
		}
	}
	nonNegative := func(key string, d Duration) {
		if d < 0 {
			fail(key, "must not be negative, got %q", d.D().String())
		}
	}

	s := &cfg.Server
	if err := checkAddr(s.Listen); err != nil {
		fail("[server] listen", "%v", err)
	}
	for _, o := range s.AllowedOrigins {
		if err := checkOrigin(o, len(s.AllowedOrigins)); err != nil {
			fail("[server] allowed_origins", "%v", err)
		}
	}
	for _, h := range s.Hosts {
		if h == "*" && len(s.Hosts) > 1 {
			fail("[server] hosts", `"*" accepts any Host: it must be the only entry`)
		} else if _, err := ws.NewHostPolicy([]string{h}); err != nil {
			fail("[server] hosts", "%v", err)
		}
	}
	between("[server] max_message_bytes", s.MaxMessageBytes, 1, maxMessageLimit)
	atLeast("[server] max_connections", s.MaxConnections, 1)
	positive("[server] handshake_timeout", s.HandshakeTimeout)
	nonNegative("[server] ping_interval", s.PingInterval)
	positive("[server] ping_timeout", s.PingTimeout)
	nonNegative("[server] idle_timeout", s.IdleTimeout)
	positive("[server] write_timeout", s.WriteTimeout)
	atLeast("[server] max_queue_bytes", s.MaxQueueBytes, 1)
	positive("[server] close_timeout", s.CloseTimeout)
	positive("[server] shutdown_timeout", s.ShutdownTimeout)
	if s.Pprof != "" {
		if err := checkAddr(s.Pprof); err != nil {
			fail("[server] pprof", "%v", err)
		} else if s.Pprof == s.Listen && !strings.HasSuffix(s.Pprof, ":0") {
			fail("[server] pprof", "must differ from [server] listen")
		}
	}

	c := &cfg.Chat
	if err := checkRoomName(c.DefaultRoom); err != nil {
		fail("[chat] default_room", "%v", err)
	}
	between("[chat] max_name_length", c.MaxNameLength, 8, 256) // guest-N plus a suffix must fit
	atLeast("[chat] max_rooms", c.MaxRooms, 1)
	if c.FloodRate < 0 || math.IsNaN(c.FloodRate) || math.IsInf(c.FloodRate, 0) {
		fail("[chat] flood_rate", "must be 0 (off) or a positive number, got %v", c.FloodRate)
	}
	if c.FloodRate > 0 {
		atLeast("[chat] flood_burst", c.FloodBurst, 1)
	} else {
		atLeast("[chat] flood_burst", c.FloodBurst, 0)
	}
	between("[chat] max_text_bytes", c.MaxTextBytes, 1, s.MaxMessageBytes)
	atLeast("[chat] announce_batch_members", c.AnnounceBatchMembers, 1)
	nonNegative("[chat] announce_interval", c.AnnounceInterval)

	st := &cfg.Store
	between("[store] api_limit", st.APILimit, 1, maxAPILimit)
	between("[store] replay", st.Replay, 0, max(st.APILimit, 0))
	atLeast("[store] max_per_room", st.MaxPerRoom, 0)
	nonNegative("[store] max_age", st.MaxAge)
	positive("[store] prune_interval", st.PruneInterval)

	sc := &cfg.Scripting
	positive("[scripting] hook_timeout", sc.HookTimeout)
	if sc.OnFailure != "refuse" && sc.OnFailure != "deliver" {
		fail("[scripting] on_failure", "must be \"refuse\" or \"deliver\", got %q", sc.OnFailure)
	}
	if sc.Enabled && sc.Dir == "" {
		fail("[scripting] dir", "must not be empty (set enabled = false to run no scripts)")
	}
	return errors.Join(errs...)
}

// checkAddr validates a "host:port" listen address (port 0 = any free port).
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port, e.g. \"127.0.0.1:8080\" or \":8080\"", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q in %q: want 0-65535", port, addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid host %q in %q", host, addr)
	}
	return nil
}

// checkOrigin validates one allowed_origins entry; n is the list's length.
func checkOrigin(o string, n int) error {
	if o == "*" {
		if n > 1 {
			return errors.New(`"*" allows every origin: it must be the only entry`)
		}
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("invalid origin %q: want scheme://host[:port] with scheme http or https, or \"*\"", o)
	}
	host := u.Hostname()
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		host = rest
	}
	if host == "" || strings.Contains(host, "*") {
		return fmt.Errorf("invalid origin %q: \"*\" is only allowed as a whole subdomain label (\"https://*.example.com\")", o)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid origin %q: bad port", o)
		}
	}
	return nil
}

// checkRoomName applies the chat server's room name rule (docs/protocol.md).
func checkRoomName(room string) error {
	if err := chat.ValidRoomName(room); err != nil {
		return fmt.Errorf("invalid room name %q: want 1-%d characters from A-Z a-z 0-9 and \"-_.\"", room, maxRoomNameLen)
	}
	return nil
}
