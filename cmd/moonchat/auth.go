package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/scripting"
)

// scriptHooks is what the authenticator and the login endpoint need of
// the scripting engine (*scripting.Engine): whether a script handles an
// event, and the connect and login events themselves.
type scriptHooks interface {
	Handles(event string) bool
	Connect(ctx context.Context, req scripting.ConnectRequest) scripting.ConnectResult
	Login(ctx context.Context, req scripting.LoginRequest) scripting.LoginResult
}

// maxReasonLen bounds a script's refusal reason as shown to the client:
// one line, short enough for a status line's company.
const maxReasonLen = 200

// authenticator is chat.Authenticator over an auth.Verifier and the
// connect script, from the [auth] table:
//
//  1. a token that is present must verify (a bad token is a 401, never a
//     guest);
//  2. when a script handles "connect", it runs with the request (room,
//     name, query without the token, headers without credentials unless
//     [auth] expose_credentials, address, the verified claims): an
//     identity it returns wins, a refusal is a 403 with its reason, and a
//     hook that does not complete refuses with 503 (fail closed);
//  3. otherwise the token's identity, or a guest when guests are
//     admitted, or a 401.
//
// It also implements chat.TokenRefresher (JWT only: a refresh does not
// run the connect script).
type authenticator struct {
	// verifier checks tokens: the configured keys plus the secret the
	// server mints login tokens with. nil only for `moonchat check`
	// without keys: every token is refused.
	verifier *auth.Verifier
	guests   bool
	expose   bool        // [auth] expose_credentials
	hooks    scriptHooks // nil without scripting
	log      *slog.Logger
	// proxies gives the connect script the client's address behind a
	// trusted proxy (clientAddr); the zero value trusts nobody.
	proxies addrlimit.Proxies
}

var (
	_ chat.Authenticator  = (*authenticator)(nil)
	_ chat.TokenRefresher = (*authenticator)(nil)
)

// verifierConfig is the auth.Config of the [auth] table. mintSecret, the
// secret the server signs login tokens with, is the HMAC key: it is
// jwt_secret when that is set, else the server's own generated key, so
// the server always accepts what it minted. nil (moonchat check) leaves
// jwt_secret as the only HMAC key.
func verifierConfig(cfg *AuthConfig, mintSecret []byte) auth.Config {
	ac := auth.Config{
		Issuer:     cfg.JWTIssuer,
		Audience:   cfg.JWTAudience,
		Leeway:     cfg.Leeway.D(),
		RequireExp: cfg.RequireExp,
		Secret:     mintSecret,
	}
	if ac.Secret == nil && cfg.JWTSecret != "" {
		ac.Secret = []byte(cfg.JWTSecret)
	}
	for _, p := range cfg.JWTPublicKeys {
		ac.PublicKeys = append(ac.PublicKeys, auth.PublicKey{Path: p})
	}
	return ac
}

// newAuthenticator builds the [auth] table's authenticator. mintSecret
// is the login-token secret (see verifierConfig); hooks is the scripting
// engine, nil when scripting is off. It fails when a key does not load.
// (Whether anyone can connect at all is validateConfig's and serve's
// concern: with guests = false and no key, only a script lets people in.)
func newAuthenticator(cfg *AuthConfig, mintSecret []byte, hooks scriptHooks, log *slog.Logger) (*authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &authenticator{guests: cfg.Guests, expose: cfg.ExposeCredentials, hooks: hooks, log: log}
	ac := verifierConfig(cfg, mintSecret)
	if ac.Secret == nil && len(ac.PublicKeys) == 0 {
		return a, nil // moonchat check without keys: nothing to load
	}
	v, err := auth.New(ac)
	if err != nil {
		return nil, fmt.Errorf("[auth]: %w", err)
	}
	a.verifier = v
	return a, nil
}

// Authenticate implements chat.Authenticator. Reasons are fixed texts or
// the connect script's own: they never hold the token.
func (a *authenticator) Authenticate(r *http.Request, room string) (chat.Identity, bool, error) {
	tok, err := auth.TokenFromRequest(r)
	var id auth.Identity
	hasToken := false
	switch {
	case errors.Is(err, auth.ErrNoToken):
	case err != nil:
		return chat.Identity{}, false, unauthorized(err)
	case a.verifier == nil:
		return chat.Identity{}, false, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "token refused: no key is configured"}
	default:
		if id, err = a.verifier.Verify(tok); err != nil {
			return chat.Identity{}, false, unauthorized(err)
		}
		hasToken = true
	}
	// The guest fast path: no token and no connect script costs a
	// query parse and one Handles lookup.
	if a.hooks != nil && a.hooks.Handles("connect") {
		res := a.hooks.Connect(r.Context(), a.connectRequest(r, room, id.Claims))
		switch {
		case res.Err != nil:
			a.log.Warn("auth: connect script failed: connection refused (fail closed)", "remote", r.RemoteAddr, "room", room, "err", res.Err)
			return chat.Identity{}, false, &chat.AuthError{Status: http.StatusServiceUnavailable, Reason: "the connect script failed; try again later"}
		case res.Refuse:
			reason := oneLine(res.Reason)
			if reason == "" {
				reason = "refused by the connect script"
			}
			return chat.Identity{}, false, &chat.AuthError{Status: http.StatusForbidden, Reason: reason}
		case res.Identity != nil:
			return *res.Identity, true, nil
		}
	}
	if hasToken {
		return chatIdentity(id), true, nil
	}
	if a.guests {
		return chat.Identity{}, false, nil
	}
	return chat.Identity{}, false, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "a token is required ([auth] guests = false)"}
}

// connectRequest is req of the connect script for r: the token is left
// out of the query, and the cookie and authorization headers out of the
// headers unless [auth] expose_credentials is set. claims is nil without
// a token.
func (a *authenticator) connectRequest(r *http.Request, room string, claims map[string]any) scripting.ConnectRequest {
	q := r.URL.Query()
	q.Del(auth.TokenQueryParam)
	h := r.Header.Clone()
	if !a.expose {
		h.Del("Cookie")
		h.Del("Authorization")
	}
	return scripting.ConnectRequest{
		Room:    room,
		Name:    q.Get("name"),
		Query:   q,
		Headers: h,
		Addr:    clientAddr(a.proxies, r),
		Claims:  claims,
	}
}

// Refresh implements chat.TokenRefresher: token must verify like a
// handshake's and allow room (its rooms claim). The connect script does
// not run: the connection's identity is already settled, and the chat
// server accepts only a token for the same account.
func (a *authenticator) Refresh(token, room string) (chat.Identity, error) {
	if a.verifier == nil {
		return chat.Identity{}, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "token refused: no key is configured"}
	}
	id, err := a.verifier.Verify(token)
	if err != nil {
		return chat.Identity{}, unauthorized(err)
	}
	if id.Rooms != nil && !chat.RoomAllowed(id.Rooms, room) {
		return chat.Identity{}, &chat.AuthError{Status: http.StatusForbidden, Reason: "token does not allow room " + strconv.Quote(room)}
	}
	return chatIdentity(id), nil
}

// chatIdentity is a verified token's identity as the chat server takes it.
func chatIdentity(id auth.Identity) chat.Identity {
	return chat.Identity{ID: id.ID, Name: id.Name, Roles: id.Roles, Rooms: id.Rooms, Expires: id.Expires}
}

// unauthorized is the 401 for a refused token. The auth package's errors
// are fixed texts ("auth: token expired"); anything else is not shown.
func unauthorized(err error) *chat.AuthError {
	reason := "token refused"
	if errors.Is(err, auth.ErrBadToken) {
		reason = strings.TrimPrefix(err.Error(), "auth: ")
	}
	return &chat.AuthError{Status: http.StatusUnauthorized, Reason: reason}
}

// oneLine makes a script's reason safe to show as one line: control
// characters become spaces, and it is cut at maxReasonLen bytes (on a
// character boundary).
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxReasonLen {
		cut := maxReasonLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.TrimSpace(s)
}
