package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/moonchat/moonchat/auth"
	"github.com/moonchat/moonchat/core/chat"
)

// authenticator is chat.Authenticator over an auth.Verifier, from the
// [auth] table: a token that verifies is an identity; no token is a guest
// when guests are admitted and a 401 otherwise; a token that does not
// verify is a 401 always (never downgraded to a guest).
type authenticator struct {
	verifier *auth.Verifier // nil: no keys configured, every token is refused
	guests   bool
}

// newAuthenticator builds the [auth] table's authenticator. It returns a
// nil chat.Authenticator (everyone is a guest, tokens are not looked at)
// when guests are admitted and no key is configured.
func newAuthenticator(cfg *AuthConfig) (chat.Authenticator, error) {
	ac := auth.Config{
		Issuer:     cfg.JWTIssuer,
		Audience:   cfg.JWTAudience,
		Leeway:     cfg.Leeway.D(),
		RequireExp: cfg.RequireExp,
	}
	if cfg.JWTSecret != "" {
		ac.Secret = []byte(cfg.JWTSecret)
	}
	for _, p := range cfg.JWTPublicKeys {
		ac.PublicKeys = append(ac.PublicKeys, auth.PublicKey{Path: p})
	}
	if ac.Secret == nil && len(ac.PublicKeys) == 0 {
		if !cfg.Guests {
			return nil, errors.New("[auth] guests = false needs jwt_secret or jwt_public_keys")
		}
		return nil, nil
	}
	v, err := auth.New(ac)
	if err != nil {
		return nil, fmt.Errorf("[auth]: %w", err)
	}
	return &authenticator{verifier: v, guests: cfg.Guests}, nil
}

// Authenticate implements chat.Authenticator. Reasons are the auth
// package's fixed texts: they never hold the token.
func (a *authenticator) Authenticate(r *http.Request, room string) (chat.Identity, bool, error) {
	tok, err := auth.TokenFromRequest(r)
	if errors.Is(err, auth.ErrNoToken) {
		if a.guests {
			return chat.Identity{}, false, nil
		}
		return chat.Identity{}, false, &chat.AuthError{Status: http.StatusUnauthorized, Reason: "a token is required ([auth] guests = false)"}
	}
	if err != nil {
		return chat.Identity{}, false, unauthorized(err)
	}
	id, err := a.verifier.Verify(tok)
	if err != nil {
		return chat.Identity{}, false, unauthorized(err)
	}
	return chat.Identity{ID: id.ID, Name: id.Name, Roles: id.Roles, Rooms: id.Rooms, Expires: id.Expires}, true, nil
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
