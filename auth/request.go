package auth

import (
	"net/http"
	"strings"
)

// TokenQueryParam is the query parameter that carries a token on a
// WebSocket URL, where browsers cannot set an Authorization header.
const TokenQueryParam = "token"

// TokenFromRequest returns the token a request carries, from the
// "token" query parameter or an "Authorization: Bearer" header (RFC 6750
// sections 2.1 and 2.3). It returns ErrNoToken when there is none,
// ErrManyTokens when there are several (RFC 6750 section 2: a client
// must not use more than one method) and ErrMalformed for an empty one.
// An Authorization header with another scheme (Basic, from a proxy in
// front) is not a token and is ignored.
func TokenFromRequest(r *http.Request) (string, error) {
	var found []string
	for _, h := range r.Header.Values("Authorization") {
		// The scheme is case-insensitive (RFC 9110 section 11.1).
		scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
		if strings.EqualFold(scheme, "Bearer") {
			found = append(found, strings.TrimSpace(rest))
		}
	}
	if r.URL != nil && mayHoldToken(r.URL.RawQuery) {
		found = append(found, r.URL.Query()[TokenQueryParam]...)
	}
	switch {
	case len(found) == 0:
		return "", ErrNoToken
	case len(found) > 1:
		return "", ErrManyTokens
	case found[0] == "":
		return "", ErrMalformed
	}
	return found[0], nil
}

// mayHoldToken reports whether a raw query could have a "token"
// parameter: it names it, or has a percent-escape that could spell it.
// Parsing the query allocates; a guest's handshake ("?name=alice") skips
// it.
func mayHoldToken(rawQuery string) bool {
	return strings.Contains(rawQuery, TokenQueryParam) || strings.Contains(rawQuery, "%")
}
