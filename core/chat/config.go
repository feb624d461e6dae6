package chat

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/ws"
)

// Config tunes a Server. It mirrors the [server] and [chat] keys of
// config.toml that concern the chat server, and every field means what it
// says: there are no defaults here (the built-in config.toml holds them,
// and cmd/moonchat hands each value on unchanged). A limit that must be
// set is an error from New when it is zero (MaxConnections, MaxRooms,
// MaxNameLength, MaxTextBytes, APILimit, DefaultRoom); where 0 means
// "off" or "none" in config.toml, it means the same here (FloodRate,
// Replay, AnnounceInterval). Negative values are errors. The fields that
// are not config.toml keys say what their zero value means.
type Config struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port], or
	// scheme://*.domain for any subdomain) allowed to open WebSockets.
	// Clients sending no Origin and pages served by this server itself are
	// always allowed; "*" allows any origin. Empty: none besides those.
	AllowedOrigins []string
	// MaxConnections bounds simultaneous WebSocket connections (a
	// handshake counts from the moment it is admitted); more are refused
	// before the upgrade with 503 and Retry-After. At least 1.
	MaxConnections int
	// AddrLimits are the per-address limits on WebSocket handshakes
	// ([server] max_connections_per_address, handshake_rate,
	// handshake_burst, limits_exempt): an address (addrlimit.Key: IPv4,
	// or IPv6 by /64) over one of them is refused before the upgrade with
	// 429 and Retry-After. The zero value limits nothing.
	AddrLimits addrlimit.Config
	// Proxies says whose forwarding header names the client's address
	// ([server] trusted_proxies, forwarded_header); the address is what
	// AddrLimits count, what the logs and User.Addr show. The zero value
	// trusts nobody: the TCP peer is the client.
	Proxies addrlimit.Proxies
	// DefaultRoom is the room of "/" and "/chat"; a valid room name.
	DefaultRoom string
	// MaxNameLength bounds nicknames, in characters. At least 8 (guest-N
	// plus a collision suffix must fit).
	MaxNameLength int
	// MaxRooms bounds rooms with members; joining a new room beyond it is
	// closed with 1013. At least 1.
	MaxRooms int
	// FloodRate is the average messages per second one connection may send
	// (token bucket); 0 = no flood control.
	FloodRate float64
	// FloodBurst is the token bucket's size; at least 1 when FloodRate is
	// set.
	FloodBurst int
	// FloodRateAddr and FloodBurstAddr are the token bucket shared by
	// every connection from one address (an IPv4 address, or an IPv6 /64),
	// so that many connections from one host do not get many times the
	// rate; 0 = no per-address limit (flood.go).
	FloodRateAddr  float64
	FloodBurstAddr int
	// FloodRateAccount and FloodBurstAccount are the token bucket shared by
	// every connection of one account (many tabs or devices of one user);
	// 0 = no per-account limit. Guests have no account bucket.
	FloodRateAccount  float64
	FloodBurstAccount int
	// FloodStrikes closes a connection with 1008 "flooding: too many
	// messages" once this many of its messages were refused by the flood
	// limits within FloodStrikeWindow; 0 = never close (the messages are
	// only dropped).
	FloodStrikes int
	// FloodStrikeWindow is the period FloodStrikes counts over; positive
	// when FloodStrikes is set.
	FloodStrikeWindow time.Duration
	// DeleteOwnWindow is [chat] delete_own_window: how long after sending
	// a message a member may delete it (Server.DeleteMessage; moderators
	// may delete any message at any time); 0 = members may not delete
	// their own messages.
	DeleteOwnWindow time.Duration
	// MaxTextBytes bounds a chat message's text; longer ones are refused
	// with a too_long error. At least 1.
	MaxTextBytes int
	// Replay is how many recent messages a newcomer gets; 0 = none. At
	// most APILimit. It is only the replay's count: a history
	// request without a limit gets APILimit.
	Replay int
	// APILimit caps one history page (WebSocket paging, since-resume and
	// /api/history), and is the size of a page whose request gives no
	// limit (paging.go). At least 1.
	APILimit int
	// MaxPending bounds the messages of one connection that are inside the
	// room pipeline (queued, being stored); past it the server stops
	// reading that connection until the room caught up, so a fast sender
	// slows down instead of growing memory. Not a config.toml key: 0
	// means defaultMaxPending.
	MaxPending int
	// AnnounceBatchMembers is the room size above which join/leave
	// notices and presence deltas are coalesced (see AnnounceInterval);
	// rooms with at most this many members announce each change at once
	// (0: every room coalesces, when AnnounceInterval is set).
	AnnounceBatchMembers int
	// AnnounceInterval is how long a big room (more than
	// AnnounceBatchMembers members) holds join/leave notices and presence
	// deltas before sending them as one event per kind: in a big room a
	// notice per change costs a write to every member for every join and
	// leave, and is noise to users. 0 = never coalesce.
	AnnounceInterval time.Duration
	// DeliverOnHookFailure chooses what happens when a hook does not
	// complete (JoinResult.Err, MessageResult.Err): false (the default,
	// [scripting] on_failure = "refuse") drops the message — not stored,
	// not delivered, the sender gets a hook_failed error — and refuses the
	// join; true ("deliver") carries on with what the hooks decided before
	// they failed, so a broken filter lets messages through. Failures are
	// logged and counted either way.
	DeliverOnHookFailure bool
	// RoomRules are the [rooms."PATTERN"] tables of config.toml: who may
	// read, post and moderate where (access.go). nil or no rules: every
	// room is open to everyone, as before rules existed. Enforced on every
	// path (access.go): join, post, WebSocket history requests,
	// /api/history and /api/rooms; a member without roles is a guest.
	RoomRules *RoomRules
	// Authenticator turns each WebSocket handshake into an identity or a
	// refusal (HTTP 401/403 before the upgrade). nil: everyone is a guest.
	Authenticator Authenticator
	// GuestPrefix is [auth] guest_prefix: when not empty, a guest asking
	// for a name an account owns is given GuestPrefix+name (then made
	// unique as usual) instead of the name's numbered variant ("alice-2").
	GuestPrefix string
	// Routes are extra HTTP handlers by exact path (such as
	// "/api/login"), served behind the same Host check as every other
	// path; cmd/moonchat adds the login endpoints here. A path the server
	// serves itself cannot be replaced (New refuses it).
	Routes map[string]http.Handler
	// AdminToken is [admin] token: the bearer token of the admin API
	// (admin.go, docs/protocol.md), compared in constant time. Empty: the
	// admin API is off (its paths answer 404).
	AdminToken string
	// AdminSeparate is true when [admin] listen is set: ServeHTTP then
	// serves neither the admin API nor /metrics, and cmd/moonchat serves
	// AdminHandler on the admin address instead.
	AdminSeparate bool
	// MetricsNeedToken is [admin] protect_metrics: /metrics answers only
	// requests bearing AdminToken (401 otherwise). New refuses it when
	// AdminToken is empty (nobody could scrape).
	MetricsNeedToken bool
	// Collectors are extra series for /metrics, registered in the
	// server's registry beside its own (cmd/moonchat: the login
	// endpoint's refusals). nil: none. New fails if a name clashes.
	Collectors []prometheus.Collector
	// Broker is the cluster's log (broker_seams.go, docs/cluster.md): set,
	// the node publishes accepted messages there instead of appending them
	// to History, and delivers what its consumer hands back
	// (Server.Deliver, Server.Redacted); History is then the node's
	// replica of the log and must not be nil. nil: a single node, as
	// before clusters existed.
	Broker Broker
	// Shared is the cluster's store of moderation, name owners and ignore
	// lists (shared_seams.go): set, it is used instead of the History's
	// ModerationStore, NameOwners and IgnoreStore, and the node's watcher
	// hands every stored change in (SharedApplier). nil: the History's.
	Shared SharedState
	// Presence is the cluster-wide roster (shared_seams.go): set, a
	// member's name is claimed for the cluster before anyone sees it, and
	// the node's watcher hands other nodes' members in (PresenceApplier).
	// nil: the roster is this node's members.
	Presence Presence
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Clock schedules the announce coalescing timer (AnnounceInterval)
	// and is the flood limits' time. Tests inject a fake one; nil means
	// package time.
	Clock Clock
	// WS configures the WebSocket engine. Subprotocols and CheckOrigin are
	// set by the chat server (from AllowedOrigins); Logger defaults to
	// Logger; its other zero values mean what ws.Config says (the
	// engine's own defaults: cmd/moonchat sets every one). WS.Hosts (the names
	// the server answers to besides loopback names and the address a
	// request arrived on) guards every path, not only upgrades.
	WS ws.Config

	// fanoutWorkers overrides the number of sweepers per big room
	// (fanout.go) for tests: 0 means GOMAXPROCS, negative means none.
	fanoutWorkers int
	// fanoutMin overrides fanoutMinMembers for tests (0 = the constant).
	fanoutMin int
}

// defaultMaxPending is MaxPending when it is 0: it is a property of the
// pipeline, not a setting in config.toml.
const defaultMaxPending = 32

// Subprotocols understood by the chat server, in order of preference.
const (
	// SubprotocolJSON selects the JSON event format.
	SubprotocolJSON = "moonchat.v1"
	// SubprotocolPlain selects the plain-text format (as does no
	// subprotocol at all).
	SubprotocolPlain = "chat"
)

// withDefaults returns cfg ready to run, or an error naming the first
// field that cannot work. Only the fields that are not settings get a
// value here (MaxPending, Logger, Clock, the WebSocket wiring): every
// setting means what it says (see Config).
func (cfg Config) withDefaults() (Config, error) {
	atLeast := func(name string, v, lo int) error {
		if v < lo {
			return fmt.Errorf("%s %d: must be at least %d", name, v, lo)
		}
		return nil
	}
	if err := ValidRoomName(cfg.DefaultRoom); err != nil {
		return cfg, fmt.Errorf("default room: %w", err)
	}
	for _, f := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"flood", cfg.FloodRate, cfg.FloodBurst},
		{"per-address flood", cfg.FloodRateAddr, cfg.FloodBurstAddr},
		{"per-account flood", cfg.FloodRateAccount, cfg.FloodBurstAccount},
	} {
		if err := (Limits{Rate: f.rate, Burst: f.burst}).check(); err != nil {
			return cfg, fmt.Errorf("%s limits: %w", f.name, err)
		}
	}
	if cfg.FloodStrikes < 0 {
		return cfg, fmt.Errorf("flood strikes %d: must be 0 (off) or more", cfg.FloodStrikes)
	}
	if cfg.FloodStrikes > 0 && cfg.FloodStrikeWindow <= 0 {
		return cfg, fmt.Errorf("flood strike window %v: must be positive when flood strikes are set", cfg.FloodStrikeWindow)
	}
	for _, c := range []struct {
		name  string
		v, lo int
	}{
		{"max connections", cfg.MaxConnections, 1},
		{"max name length", cfg.MaxNameLength, 8}, // guest-N plus a collision suffix must fit
		{"max rooms", cfg.MaxRooms, 1},
		{"max text bytes", cfg.MaxTextBytes, 1},
		{"api limit", cfg.APILimit, 1},
		{"replay", cfg.Replay, 0},
		{"max pending", cfg.MaxPending, 0},
		{"announce batch members", cfg.AnnounceBatchMembers, 0},
	} {
		if err := atLeast(c.name, c.v, c.lo); err != nil {
			return cfg, err
		}
	}
	if cfg.Replay > cfg.APILimit {
		return cfg, fmt.Errorf("replay %d: must be at most the api limit (%d)", cfg.Replay, cfg.APILimit)
	}
	if cfg.AnnounceInterval < 0 {
		return cfg, fmt.Errorf("announce interval %v: must not be negative (0 = never coalesce)", cfg.AnnounceInterval)
	}
	if cfg.MetricsNeedToken && cfg.AdminToken == "" {
		return cfg, fmt.Errorf("metrics need the admin token, but the admin token is empty")
	}
	if err := checkRoutes(cfg.Routes); err != nil {
		return cfg, err
	}
	cfg.Routes = maps.Clone(cfg.Routes) // the caller's map cannot change them later
	if cfg.MaxPending == 0 {
		cfg.MaxPending = defaultMaxPending
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
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return cfg, fmt.Errorf("allowed origin %q: want scheme://host[:port] or \"*\"", o)
		}
		// "*" only as a whole leading label: anything else would be
		// compared literally and never match.
		if strings.Contains(strings.TrimPrefix(u.Host, "*."), "*") {
			return cfg, fmt.Errorf("allowed origin %q: \"*\" may only stand for subdomains, as in https://*.example.com", o)
		}
	}
	cfg.WS.Subprotocols = []string{SubprotocolJSON, SubprotocolPlain}
	cfg.WS.CheckOrigin = originChecker(cfg.AllowedOrigins)
	if cfg.WS.Logger == nil {
		cfg.WS.Logger = cfg.Logger
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
		o = originKey(strings.TrimSuffix(strings.ToLower(o), "/"))
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
		o := originKey(strings.ToLower(u.Scheme + "://" + u.Host))
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

// originKey drops the scheme's default port from a lower-case
// "scheme://host[:port]" (a browser's Origin omits it, RFC 6454 section
// 6.1), so that "https://chat.example.com:443" in allowed_origins matches
// the Origin "https://chat.example.com".
func originKey(o string) string {
	for _, d := range [...]struct{ scheme, port string }{{"http://", ":80"}, {"ws://", ":80"}, {"https://", ":443"}, {"wss://", ":443"}} {
		if strings.HasPrefix(o, d.scheme) && strings.HasSuffix(o, d.port) {
			return strings.TrimSuffix(o, d.port)
		}
	}
	return o
}
