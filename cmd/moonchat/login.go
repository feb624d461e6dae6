package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/scripting"
)

// The login endpoints (docs/auth.md, /work api contract): POST /api/login
// asks the login script about a name and password and mints a token for
// the identity it returns; POST /api/token renews a token this server
// minted, while its login is younger than [auth] login_max_age.

// Limits of POST /api/login. Per remote address: 10 attempts a minute on
// average with bursts of 5, enough for typing mistakes, far too few to
// guess passwords. The table of addresses is bounded: when it is full of
// addresses still being limited, new addresses are refused too (fail
// closed) until entries recover.
const (
	loginBodyMax    = 4 << 10 // bytes of the JSON body
	loginEvery      = 6 * time.Second
	loginBurst      = 5
	loginMaxClients = 10000
)

// Reasons of moonchat_login_refused_total.
const (
	refusedWrong       = "wrong_credentials" // the script said no, or nobody knew the name
	refusedRateLimited = "rate_limited"
	refusedHookFailed  = "hook_failed" // the login script failed (or returned an unusable identity)
	refusedBadRequest  = "bad_request"
	refusedNoScript    = "no_script"
	refusedRenewal     = "renewal_refused" // POST /api/token refused
)

// loginService serves /api/login and /api/token.
type loginService struct {
	hooks  scriptHooks    // nil without scripting: no login
	minter *auth.Minter   // signs with the minting secret
	minted *auth.Verifier // accepts only tokens signed with the minting secret
	maxAge time.Duration  // [auth] login_max_age
	limit  *addrLimiter
	// proxies resolves the client address the limit counts ([server]
	// trusted_proxies; the zero value trusts nobody).
	proxies addrlimit.Proxies
	log     *slog.Logger
	// logSample rate-limits the refusal log lines: a guesser refused a
	// million times must not write a million lines (the counts stay
	// exact in moonchat_login_refused_total).
	logSample *addrlimit.Sampler
	now       func() time.Time

	refused *prometheus.CounterVec // reason
	issued  *prometheus.CounterVec // kind: login, renewal
}

// mintSecret is the secret the server signs login tokens with: [auth]
// jwt_secret when set, else the key kept beside the database
// (auth.LoadOrCreateSecret), else, without a database, a random one that
// lives as long as the process.
func mintSecret(cfg *Config, log *slog.Logger) ([]byte, error) {
	if cfg.Auth.JWTSecret != "" {
		return []byte(cfg.Auth.JWTSecret), nil
	}
	if cfg.Store.Path == "" {
		secret := make([]byte, 32)
		rand.Read(secret) // never fails (crypto/rand, Go 1.24+)
		log.Info("login tokens are signed with a key kept in memory only ([store] path is empty and [auth] jwt_secret unset): they stop working at restart")
		return secret, nil
	}
	path := filepath.Join(filepath.Dir(cfg.Store.Path), auth.SecretFileName)
	secret, err := auth.LoadOrCreateSecret(path)
	if err != nil {
		return nil, fmt.Errorf("login token key ([auth] jwt_secret unset, so kept beside the database): %w", err)
	}
	return secret, nil
}

// newLoginService builds the login endpoints from [auth]; secret is
// mintSecret's.
func newLoginService(cfg *AuthConfig, secret []byte, hooks scriptHooks, log *slog.Logger) (*loginService, error) {
	m, err := auth.NewMinter(auth.MinterConfig{Secret: secret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.LoginTTL.D()})
	if err != nil {
		return nil, fmt.Errorf("[auth] login: %w", err)
	}
	v, err := auth.New(auth.Config{Secret: secret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, Leeway: cfg.Leeway.D(), RequireExp: true})
	if err != nil {
		return nil, fmt.Errorf("[auth] login: %w", err)
	}
	l := &loginService{
		hooks:     hooks,
		minter:    m,
		minted:    v,
		maxAge:    cfg.LoginMaxAge.D(),
		limit:     newAddrLimiter(rate.Every(loginEvery), loginBurst, loginMaxClients),
		log:       log,
		logSample: addrlimit.NewSampler(loginLogRate, loginLogBurst),
		now:       time.Now,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_login_refused_total",
			Help: "POST /api/login and /api/token requests refused, by reason (wrong_credentials, rate_limited, hook_failed, bad_request, no_script, renewal_refused).",
		}, []string{"reason"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moonchat_login_tokens_total",
			Help: "Tokens minted by POST /api/login (kind login) and /api/token (kind renewal).",
		}, []string{"kind"}),
	}
	// Every series exists from the start, at 0.
	for _, r := range []string{refusedWrong, refusedRateLimited, refusedHookFailed, refusedBadRequest, refusedNoScript, refusedRenewal} {
		l.refused.WithLabelValues(r)
	}
	l.issued.WithLabelValues("login")
	l.issued.WithLabelValues("renewal")
	return l, nil
}

// routes are the endpoints, for chat.Config.Routes.
func (l *loginService) routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/api/login": http.HandlerFunc(l.serveLogin),
		"/api/token": http.HandlerFunc(l.serveToken),
	}
}

// collectors are the endpoints' /metrics series, for chat.Config.Collectors.
func (l *loginService) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.refused, l.issued}
}

// available reports whether a loaded script answers logins. Scripts
// reload, so it is asked every time.
func (l *loginService) available() bool { return l.hooks != nil && l.hooks.Handles("login") }

// serveLogin answers GET /api/login ({"available":B}) and POST /api/login
// ({"name":N,"password":P} → a token).
func (l *loginService) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, map[string]bool{"available": l.available()})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	if !l.available() {
		l.refuse(r, refusedNoScript, "")
		writeJSONError(w, http.StatusNotFound, "no login script is loaded")
		return
	}
	// Only JSON: a cross-site page can POST a form or text/plain without
	// asking, but application/json needs a CORS preflight this server
	// never grants, so visitors' browsers cannot be made to guess
	// passwords for another site (nor use up their address's attempts).
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		l.refuse(r, refusedBadRequest, "")
		writeJSONError(w, http.StatusBadRequest, "bad request: want Content-Type: application/json")
		return
	}
	if ok, wait := l.limit.allow(clientKey(l.proxies, r), l.now()); !ok {
		l.refuse(r, refusedRateLimited, "")
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeJSONError(w, http.StatusTooManyRequests, "too many login attempts: try again later")
		return
	}
	var body struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, loginBodyMax))
	if err := dec.Decode(&body); err != nil || dec.More() {
		l.refuse(r, refusedBadRequest, "")
		writeJSONError(w, http.StatusBadRequest, `bad request: want a JSON body {"name":…,"password":…} of at most 4 KiB`)
		return
	}
	res := l.hooks.Login(r.Context(), scripting.LoginRequest{Name: body.Name, Password: body.Password, Addr: clientAddr(l.proxies, r)})
	switch {
	case res.Err != nil:
		l.log.Warn("login: the login script failed: refused (fail closed)", "remote", r.RemoteAddr, "name", body.Name, "err", res.Err)
		l.refuse(r, refusedHookFailed, body.Name)
		writeJSONError(w, http.StatusServiceUnavailable, "the login script failed; try again later")
		return
	case res.Refuse || res.Identity == nil:
		reason := oneLine(res.Reason)
		if reason == "" {
			reason = "wrong name or password"
		}
		l.refuse(r, refusedWrong, body.Name)
		unauthorizedJSON(w, reason)
		return
	}
	id := res.Identity
	now := l.now()
	tok, exp, err := l.minter.Mint(auth.Identity{ID: id.ID, Name: id.Name, Roles: id.Roles, Rooms: id.Rooms, LoginTime: now})
	if err != nil {
		// The script returned an identity no token can carry (no id, a
		// name with control characters...): its failure, not the user's.
		l.log.Warn("login: the login script returned an unusable identity: refused", "remote", r.RemoteAddr, "name", body.Name, "err", err)
		l.refuse(r, refusedHookFailed, body.Name)
		writeJSONError(w, http.StatusServiceUnavailable, "the login script returned an unusable identity")
		return
	}
	l.issued.WithLabelValues("login").Inc()
	l.log.Info("login", "remote", r.RemoteAddr, "id", id.ID, "name", id.Name)
	name := id.Name
	if name == "" {
		name = id.ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires": exp.Unix(), "id": id.ID, "name": name})
}

// serveToken answers POST /api/token: a token this server minted at
// login, still valid, renewed with a fresh expiry as long as the login is
// younger than login_max_age (and never beyond that age).
func (l *loginService) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	tok, err := auth.TokenFromRequest(r)
	if err != nil {
		l.refuse(r, refusedRenewal, "")
		unauthorizedJSON(w, unauthorized(err).Reason)
		return
	}
	id, err := l.minted.Verify(tok)
	if err != nil {
		l.refuse(r, refusedRenewal, "")
		unauthorizedJSON(w, unauthorized(err).Reason)
		return
	}
	if id.LoginTime.IsZero() {
		l.refuse(r, refusedRenewal, "")
		unauthorizedJSON(w, "not a login token of this server: only tokens from /api/login are renewed")
		return
	}
	deadline := id.LoginTime.Add(l.maxAge)
	if !l.now().Before(deadline) {
		l.refuse(r, refusedRenewal, "")
		unauthorizedJSON(w, "the login is too old ([auth] login_max_age): log in again")
		return
	}
	tok2, exp, err := l.minter.Mint(auth.Identity{ID: id.ID, Name: id.Name, Roles: id.Roles, Rooms: id.Rooms, LoginTime: id.LoginTime, Expires: deadline})
	if err != nil { // the deadline passed between the check and Mint
		l.refuse(r, refusedRenewal, "")
		unauthorizedJSON(w, "the login is too old ([auth] login_max_age): log in again")
		return
	}
	l.issued.WithLabelValues("renewal").Inc()
	writeJSON(w, http.StatusOK, map[string]any{"token": tok2, "expires": exp.Unix()})
}

// Log sampling of login refusals (refuse): a burst of loginLogBurst lines,
// then loginLogRate a second, as core/chat samples refused handshakes.
const (
	loginLogRate  = 5
	loginLogBurst = 20
)

// refuse counts a refused request and logs it (sampled: each line says
// how many were left out before it). name is the name a login tried (""
// for none); passwords and tokens are never logged.
func (l *loginService) refuse(r *http.Request, reason, name string) {
	l.refused.WithLabelValues(reason).Inc()
	ok, n := l.logSample.Allow(time.Now())
	if !ok {
		return
	}
	if name != "" {
		l.log.Info("login refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", reason, "name", name, "suppressed", n)
		return
	}
	l.log.Info("login refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", reason, "suppressed", n)
}

// writeJSON answers with v as JSON. Never cached: bodies may hold tokens.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONError answers {"error":reason}.
func writeJSONError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, map[string]string{"error": reason})
}

// unauthorizedJSON is a 401 with its challenge (RFC 6750 section 3).
func unauthorizedJSON(w http.ResponseWriter, reason string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="moonchat"`)
	writeJSONError(w, http.StatusUnauthorized, reason)
}

// addrLimiter is a token bucket (golang.org/x/time/rate) per remote
// address (limitKey: the IPv4 address, or the IPv6 /64). Safe for
// concurrent use.
type addrLimiter struct {
	every rate.Limit
	burst int
	max   int // addresses tracked at most

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newAddrLimiter(every rate.Limit, burst, max int) *addrLimiter {
	return &addrLimiter{every: every, burst: burst, max: max, m: make(map[string]*rate.Limiter)}
}

// limitKey is the bucket of a remote address: its IPv4 address, or the
// /64 prefix of its IPv6 one (one host usually holds a whole /64, so
// per-address buckets would let it try without limit). It is
// addrlimit.KeyOf, the definition the WebSocket limits use too.
func limitKey(remote string) string { return addrlimit.KeyOf(remote) }

// allow takes one attempt for remote (host:port) at now; when none is
// left it reports false and how long until the next.
func (a *addrLimiter) allow(remote string, now time.Time) (bool, time.Duration) {
	host := limitKey(remote)
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.m[host]
	if lim == nil {
		if len(a.m) >= a.max {
			// Forget the addresses whose bucket is full again: they
			// are as good as new.
			for h, l := range a.m {
				if l.TokensAt(now) >= float64(a.burst) {
					delete(a.m, h)
				}
			}
			if len(a.m) >= a.max {
				return false, time.Duration(a.burst) * time.Duration(float64(time.Second)/float64(a.every))
			}
		}
		lim = rate.NewLimiter(a.every, a.burst)
		a.m[host] = lim
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Minute
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
