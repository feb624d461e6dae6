package auth

import "errors"

// ErrNoToken means the request carried no token at all. It is the only
// error here that does not match [ErrBadToken]: a server that admits
// guests carries on as a guest, one that does not refuses with 401.
var ErrNoToken = errors.New("auth: no token")

// ErrBadToken matches (with errors.Is) every refusal of a token that was
// presented: each error below is a more precise name for it. Every one
// of them means HTTP 401 at the handshake.
var ErrBadToken = errors.New("auth: token refused")

// The named refusals. Each matches ErrBadToken with errors.Is, and each
// text is fixed: it never contains the token or a value taken from it.
var (
	// ErrManyTokens: the request carried more than one token (RFC 6750
	// section 2: a client must use only one way to send it).
	ErrManyTokens error = refusal("more than one token in the request")
	// ErrMalformed: not three base64url segments of JSON, or a claim of
	// the wrong JSON type.
	ErrMalformed error = refusal("malformed token")
	// ErrWrongAlgorithm: the token's "alg" is not one the configured keys
	// admit ("none", HS* without a secret, ES256 with only a P-384 key...).
	ErrWrongAlgorithm error = refusal("token signing algorithm not accepted")
	// ErrBadSignature: no configured key of the token's algorithm
	// verifies its signature.
	ErrBadSignature error = refusal("token signature does not verify")
	// ErrExpired: "exp" is in the past (beyond the leeway).
	ErrExpired error = refusal("token expired")
	// ErrNotYetValid: "nbf" or "iat" is in the future (beyond the leeway).
	ErrNotYetValid error = refusal("token not valid yet")
	// ErrMissingExp: Config.RequireExp is set and the token has no "exp".
	ErrMissingExp error = refusal("token has no expiry (exp)")
	// ErrWrongIssuer: Config.Issuer is set and "iss" is absent or differs.
	ErrWrongIssuer error = refusal("token issuer not accepted")
	// ErrWrongAudience: Config.Audience is set and "aud" is absent or does
	// not contain it.
	ErrWrongAudience error = refusal("token audience not accepted")
	// ErrMissingSub: the token has no "sub", the stable user id.
	ErrMissingSub error = refusal("token has no subject (sub)")
	// ErrBadClaims: a claim is present but unusable (a "sub" or "name"
	// that is too long or has control characters, an empty role...).
	ErrBadClaims error = refusal("token claims not accepted")
)

// refusal is the type of the named refusals: a fixed text that matches
// ErrBadToken. Its values are compared by identity (==, errors.Is).
type refusal string

func (r refusal) Error() string { return "auth: " + string(r) }

// Is makes every refusal match ErrBadToken.
func (r refusal) Is(target error) bool { return target == ErrBadToken }
