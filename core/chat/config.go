package chat

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// Config tunes a Server. It mirrors the [server], [chat] and [store] keys of
// config.toml that concern the chat server; the zero value of every field
// means "the default" (given in brackets). Where config.toml uses 0 for
// "off", the field uses a negative value, so cmd/moonchat maps 0 to -1.
type Config struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port], or
	// scheme://*.domain for any subdomain) allowed to open WebSockets.
	// Clients sending no Origin and pages served by this server itself are
	// always allowed; "*" allows any origin. [none]
	AllowedOrigins []string
	// MaxConnections bounds simultaneous WebSocket connections; more are
	// closed with 1013 "server full". [10000]
	MaxConnections int
	// DefaultRoom is the room of "/" and "/chat". ["lobby"]
	DefaultRoom string
	// MaxNameLength bounds nicknames, in characters. [24]
	MaxNameLength int
	// MaxRooms bounds rooms with members; joining a new room beyond it is
	// closed with 1013. [1000]
	MaxRooms int
	// FloodRate is the average messages per second one connection may send
	// (token bucket); negative turns flood control off. [10]
	FloodRate float64
	// FloodBurst is the token bucket's size. [20]
	FloodBurst int
	// MaxTextBytes bounds a chat message's text; longer ones are refused
	// with a too_long error. [4096]
	MaxTextBytes int
	// Replay is how many recent messages a newcomer gets; negative = none.
	// It is capped at APILimit. It is only the replay's count: a history
	// request without a limit gets APILimit. [50]
	Replay int
	// APILimit caps one history page (WebSocket paging, since-resume and
	// /api/history), and is the size of a page whose request gives no
	// limit (paging.go). [500]
	APILimit int
	// MaxPending bounds the messages of one connection that are inside the
	// room pipeline (queued, being stored); past it the server stops
	// reading that connection until the room caught up, so a fast sender
	// slows down instead of growing memory. [32]
	MaxPending int
	// AnnounceBatchMembers is the room size above which join/leave
	// notices and presence deltas are coalesced (see AnnounceInterval);
	// rooms with at most this many members announce each change at once.
	// Negative is an error. [100]
	AnnounceBatchMembers int
	// AnnounceInterval is how long a big room (more than
	// AnnounceBatchMembers members) holds join/leave notices and presence
	// deltas before sending them as one event per kind: in a big room a
	// notice per change costs a write to every member for every join and
	// leave, and is noise to users. Negative = never coalesce. [1s]
	AnnounceInterval time.Duration
	// DeliverOnHookFailure chooses what happens when a hook does not
	// complete (JoinResult.Err, MessageResult.Err): false (the default,
	// [scripting] on_failure = "refuse") drops the message — not stored,
	// not delivered, the sender gets a hook_failed error — and refuses the
	// join; true ("deliver") carries on with what the hooks decided before
	// they failed, so a broken filter lets messages through. Failures are
	// logged and counted either way. [false]
	DeliverOnHookFailure bool
	// Logger receives the server's logs. [slog.Default()]
	Logger *slog.Logger
	// Clock schedules the announce coalescing timer (AnnounceInterval).
	// Tests inject a fake one. [package time]
	Clock Clock
	// WS configures the WebSocket engine. Subprotocols and CheckOrigin are
	// set by the chat server (from AllowedOrigins); Logger defaults to
	// Logger; MaxMessageBytes defaults to 65536 here. WS.Hosts (the names
	// the server answers to besides loopback names and the address a
	// request arrived on) guards every path, not only upgrades.
	WS ws.Config

	// fanoutWorkers overrides the number of sweepers per big room
	// (fanout.go) for tests: 0 means GOMAXPROCS, negative means none.
	fanoutWorkers int
	// fanoutMin overrides fanoutMinMembers for tests (0 = the constant).
	fanoutMin int
}

// Defaults for the zero values of Config.
const (
	DefaultMaxConnections  = 10000
	DefaultRoom            = "lobby"
	DefaultMaxNameLength   = 24
	DefaultMaxRooms        = 1000
	DefaultFloodRate       = 10
	DefaultFloodBurst      = 20
	DefaultMaxTextBytes    = 4096
	DefaultReplay          = 50
	DefaultAPILimit        = 500
	DefaultMaxPending      = 32
	DefaultMaxMessageBytes = 65536

	DefaultAnnounceBatchMembers = 100
	DefaultAnnounceInterval     = time.Second
)

// Subprotocols understood by the chat server, in order of preference.
const (
	// SubprotocolJSON selects the JSON event format.
	SubprotocolJSON = "moonchat.v1"
	// SubprotocolPlain selects the plain-text format (as does no
	// subprotocol at all).
	SubprotocolPlain = "chat"
)

// withDefaults returns cfg with defaults applied, or an error for values
// that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.DefaultRoom == "" {
		cfg.DefaultRoom = DefaultRoom
	}
	if err := ValidRoomName(cfg.DefaultRoom); err != nil {
		return cfg, fmt.Errorf("default room: %w", err)
	}
	if cfg.MaxNameLength <= 0 {
		cfg.MaxNameLength = DefaultMaxNameLength
	}
	if cfg.MaxNameLength < 8 {
		// guest-N plus a collision suffix must fit.
		return cfg, fmt.Errorf("max name length %d: must be at least 8", cfg.MaxNameLength)
	}
	if cfg.MaxRooms <= 0 {
		cfg.MaxRooms = DefaultMaxRooms
	}
	if cfg.FloodRate == 0 {
		cfg.FloodRate = DefaultFloodRate
	}
	if cfg.FloodBurst <= 0 {
		cfg.FloodBurst = DefaultFloodBurst
	}
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = DefaultMaxTextBytes
	}
	if cfg.APILimit <= 0 {
		cfg.APILimit = DefaultAPILimit
	}
	if cfg.Replay == 0 {
		cfg.Replay = DefaultReplay
	}
	if cfg.Replay < 0 {
		cfg.Replay = 0
	}
	cfg.Replay = min(cfg.Replay, cfg.APILimit)
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.AnnounceBatchMembers < 0 {
		return cfg, fmt.Errorf("announce batch members %d: must not be negative", cfg.AnnounceBatchMembers)
	}
	if cfg.AnnounceBatchMembers == 0 {
		cfg.AnnounceBatchMembers = DefaultAnnounceBatchMembers
	}
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = DefaultAnnounceInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return cfg, fmt.Errorf("allowed origin %q: want scheme://host[:port] or \"*\"", o)
		}
	}
	cfg.WS.Subprotocols = []string{SubprotocolJSON, SubprotocolPlain}
	cfg.WS.CheckOrigin = originChecker(cfg.AllowedOrigins)
	if cfg.WS.Logger == nil {
		cfg.WS.Logger = cfg.Logger
	}
	if cfg.WS.MaxMessageBytes <= 0 {
		cfg.WS.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return cfg, nil
}

// originChecker builds the engine's CheckOrigin from the allowed list.
// Cross-site WebSocket hijacking is only possible through a browser, and a
// browser always sends Origin, so requests without one are accepted; so are
// pages this server served itself (ws.SameOrigin: the Origin's scheme, host
// and port are those the request was sent to; the Host itself is checked
// first, against Config.WS.Hosts).
func originChecker(allowed []string) func(r *http.Request) bool {
	var exact []string
	var suffixes []string // "scheme://" + ".domain" pairs for "*." entries
	anyOrigin := false
	for _, o := range allowed {
		o = strings.TrimSuffix(strings.ToLower(o), "/")
		switch {
		case o == "*":
			anyOrigin = true
		case strings.Contains(o, "://*."):
			scheme, rest, _ := strings.Cut(o, "://*")
			suffixes = append(suffixes, scheme+"://", rest)
		default:
			exact = append(exact, o)
		}
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || anyOrigin {
			return true
		}
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" {
			return false
		}
		if ws.SameOrigin(r) { // scheme, host and port; Host was checked (hostAllowed)
			return true
		}
		o := strings.ToLower(u.Scheme + "://" + u.Host)
		for _, e := range exact {
			if o == e {
				return true
			}
		}
		for i := 0; i < len(suffixes); i += 2 {
			scheme, dom := suffixes[i], suffixes[i+1]
			if strings.HasPrefix(o, scheme) && strings.HasSuffix(o, dom) && len(o) > len(scheme)+len(dom) {
				return true
			}
		}
		return false
	}
}
