package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/ws"
	"github.com/moonchat/moonchat/scripting"
)

// Validation: what TOML types cannot express (ranges, addresses, origins,
// room names, keys that depend on each other). Errors name the key.

// Limits that are not a matter of taste: beyond them something breaks.
const (
	minAdminTokenLen = 32      // guessing stays out of reach (about 190 bits of base64)
	maxGuestPrefix   = 16      // characters; the name still needs room after it
	maxRoomNameLen   = 32      // docs/protocol.md
	maxAPILimit      = 10000   // one history page must stay a sane size in memory
	maxMessageLimit  = 1 << 30 // the engine keeps one message in memory
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
	if s.Compression != "on" && s.Compression != "off" {
		fail("[server] compression", "%q: want \"on\" or \"off\"", s.Compression)
	}
	between("[server] compression_threshold", s.CompressionThreshold, 0, s.MaxMessageBytes)
	checkAddrLimits(s, fail)
	checkTLSConfig(s, fail)
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
	// Each flood bucket (chat.Config, core/chat/flood.go): a rate of 0
	// (off) or more, a burst of at least 1 when the rate is set.
	floodLimits := func(rateKey, burstKey string, rate float64, burst int) {
		if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
			fail(rateKey, "must be 0 (off) or a positive number, got %v", rate)
		}
		if rate > 0 {
			between(burstKey, burst, 1, chat.MaxFloodBurst)
		} else {
			between(burstKey, burst, 0, chat.MaxFloodBurst)
		}
	}
	floodLimits("[chat] flood_rate", "[chat] flood_burst", c.FloodRate, c.FloodBurst)
	floodLimits("[chat] flood_rate_addr", "[chat] flood_burst_addr", c.FloodRateAddr, c.FloodBurstAddr)
	floodLimits("[chat] flood_rate_account", "[chat] flood_burst_account", c.FloodRateAccount, c.FloodBurstAccount)
	atLeast("[chat] flood_strikes", c.FloodStrikes, 0)
	if c.FloodStrikes > 0 {
		positive("[chat] flood_strike_window", c.FloodStrikeWindow)
	} else {
		nonNegative("[chat] flood_strike_window", c.FloodStrikeWindow)
	}
	between("[chat] max_text_bytes", c.MaxTextBytes, 1, s.MaxMessageBytes)
	atLeast("[chat] announce_batch_members", c.AnnounceBatchMembers, 1)
	nonNegative("[chat] announce_interval", c.AnnounceInterval)
	nonNegative("[chat] delete_own_window", c.DeleteOwnWindow)
	if _, ok := cfg.Scripts["delete"]["delete_own_window"]; ok {
		// delete.lua's option became a config key (issue 14): say so
		// rather than ignore the user's window.
		fail("[scripts.delete] delete_own_window", "moved to [chat] delete_own_window")
	}
	between("[chat] api_limit", c.APILimit, 1, maxAPILimit)
	between("[chat] replay", c.Replay, 0, max(c.APILimit, 0))

	st := &cfg.Store
	atLeast("[store] max_per_room", st.MaxPerRoom, 0)
	nonNegative("[store] max_age", st.MaxAge)
	positive("[store] prune_interval", st.PruneInterval)

	sc := &cfg.Scripting
	positive("[scripting] hook_timeout", sc.HookTimeout)
	atLeast("[scripting] max_memory_bytes", sc.MaxMemoryBytes, scripting.MinMaxMemory)
	if sc.OnFailure != "refuse" && sc.OnFailure != "deliver" {
		fail("[scripting] on_failure", "must be \"refuse\" or \"deliver\", got %q", sc.OnFailure)
	}
	if sc.Enabled && sc.Dir == "" {
		fail("[scripting] dir", "must not be empty (set enabled = false to run no scripts)")
	}
	if sc.DisableAfter < 0 {
		fail("[scripting] disable_after", "must be 0 (never) or more, got %d", sc.DisableAfter)
	}
	for i, n := range sc.Shadow {
		switch {
		case !strings.HasSuffix(n, ".lua") || strings.ContainsAny(n, `/\`) || strings.HasPrefix(n, "."):
			fail("[scripting] shadow", "%q must be the file name of a script in the scripts directory (NAME.lua)", n)
		case scripting.IsTestScript(n):
			fail("[scripting] shadow", "%q is a script test (*_test.lua), which never runs in the server", n)
		case slices.Contains(sc.Shadow[:i], n):
			fail("[scripting] shadow", "%q is listed twice", n)
		}
	}

	au := &cfg.Auth
	if au.Leeway.D() < 0 || au.Leeway.D() > auth.MaxLeeway {
		fail("[auth] leeway", "must be between 0s and %v, got %v", auth.MaxLeeway, au.Leeway.D())
	}
	if au.JWTSecret != "" && len(au.JWTSecret) < auth.MinSecretLen {
		fail("[auth] jwt_secret", "must be at least %d bytes (RFC 7518 section 3.2), got %d", auth.MinSecretLen, len(au.JWTSecret))
	}
	for i, p := range au.JWTPublicKeys {
		if p == "" {
			fail("[auth] jwt_public_keys", "entry %d is empty", i+1)
		}
	}
	if !au.Guests && au.JWTSecret == "" && len(au.JWTPublicKeys) == 0 && !sc.Enabled {
		// With scripts, a connect script or the login script (tokens the
		// server mints itself) can still let people in.
		fail("[auth] guests", "false needs a key to verify tokens with (jwt_secret or jwt_public_keys) or scripting (a connect or login script): nobody could connect")
	}
	if err := checkGuestPrefix(au.GuestPrefix, c.MaxNameLength); err != nil {
		fail("[auth] guest_prefix", "%v", err)
	}
	positive("[auth] login_ttl", au.LoginTTL)
	if au.LoginTTL.D() > auth.MaxMintTTL {
		fail("[auth] login_ttl", "must be at most %v, got %v", auth.MaxMintTTL, au.LoginTTL.D())
	}
	if au.LoginMaxAge < au.LoginTTL {
		fail("[auth] login_max_age", "must be at least login_ttl (%v), got %v", au.LoginTTL.D(), au.LoginMaxAge.D())
	}

	ad := &cfg.Admin
	if ad.Token != "" && len(ad.Token) < minAdminTokenLen {
		fail("[admin] token", "must be empty (admin API off) or at least %d characters, got %d", minAdminTokenLen, len(ad.Token))
	}
	if strings.ContainsFunc(ad.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		fail("[admin] token", "must not contain spaces or control characters (it travels in an Authorization header)")
	}
	if ad.ProtectMetrics && ad.Token == "" {
		fail("[admin] protect_metrics", "true needs [admin] token: nobody could read /metrics")
	}
	if ad.Listen != "" {
		if err := checkAddr(ad.Listen); err != nil {
			fail("[admin] listen", "%v", err)
		} else if !strings.HasSuffix(ad.Listen, ":0") && (ad.Listen == s.Listen || ad.Listen == s.Pprof) {
			fail("[admin] listen", "must differ from [server] listen and [server] pprof")
		}
	}

	checkClusterConfig(cfg, fail)
	buildRoomRules(cfg.Rooms, fail)
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

// checkGuestPrefix validates [auth] guest_prefix: "" (off), or a short
// run of printable characters without spaces that leaves room for a name
// within [chat] max_name_length.
func checkGuestPrefix(p string, maxName int) error {
	if p == "" {
		return nil
	}
	n := utf8.RuneCountInString(p)
	switch {
	case !utf8.ValidString(p):
		return errors.New("must be valid UTF-8")
	case n > maxGuestPrefix || n >= maxName-1:
		return fmt.Errorf("must be at most %d characters and shorter than [chat] max_name_length - 1, got %d", maxGuestPrefix, n)
	case strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' }):
		return fmt.Errorf("%q: no spaces, control characters or \":\"", p)
	case p[0] == '*':
		return fmt.Errorf("%q: must not start with \"*\" (plain-text notices start so)", p)
	}
	return nil
}
