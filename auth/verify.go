package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// MaxLeeway bounds Config.Leeway: enough for clocks that drift, not
// enough to revive a token that expired long ago.
const MaxLeeway = 5 * time.Minute

// MaxTokenLen bounds the token Verify parses, in bytes: far above any
// real token, low enough that a hostile one costs little to refuse.
const MaxTokenLen = 8 << 10

// Limits on claim values. A claim beyond them is refused (ErrBadClaims),
// not cut: an id that was cut could name someone else.
const (
	MaxIDLen    = 256 // bytes of "sub"
	MaxNameLen  = 64  // bytes of "name"
	MaxListLen  = 64  // entries of "roles" or of "rooms"
	MaxEntryLen = 128 // bytes of one role or room pattern
)

// Config names the keys and rules a Verifier trusts. At least one key
// (Secret or PublicKeys) is required.
type Config struct {
	// Secret is the HMAC key; nil disables HS*. At least MinSecretLen
	// bytes; it admits HS256, HS384 from 48 bytes and HS512 from 64 (RFC
	// 7518 section 3.2: a key no shorter than the hash output).
	Secret []byte
	// PublicKeys are the trusted public keys. An RSA key admits RS256/384/512
	// and PS256/384/512, an ECDSA key only the ES* of its curve (P-256:
	// ES256, P-384: ES384, P-521: ES512), an Ed25519 key EdDSA.
	PublicKeys []PublicKey
	// Issuer, when not empty, must equal the token's "iss".
	Issuer string
	// Audience, when not empty, must be one of the token's "aud".
	Audience string
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat"; at most
	// MaxLeeway.
	Leeway time.Duration
	// RequireExp refuses tokens without "exp" (ErrMissingExp).
	RequireExp bool
	// Now replaces time.Now in tests; nil means time.Now.
	Now func() time.Time
}

// Identity is who a verified token says the user is.
//
// Invariants: ID is not empty, at most MaxIDLen bytes of valid UTF-8
// without control characters; Name likewise (at most MaxNameLen) and
// equals ID when the token has no "name"; Roles and Rooms hold at most
// MaxListLen non-empty entries each; Rooms nil means the token does not
// narrow the rooms, a non-nil empty list means it allows none; Expires is
// zero when the token has no "exp".
type Identity struct {
	ID      string
	Name    string
	Roles   []string
	Rooms   []string
	Expires time.Time
	// LoginTime is when the user logged in, for a token a Minter signed
	// at login (the "login_time" claim, a NumericDate): a renewal carries
	// it on, so that a session can be held to a maximum age. Zero when
	// the token has none.
	LoginTime time.Time
	// Claims are all of the verified token's claims as JSON decoded them
	// (numbers are float64), for scripts that read claims of their own
	// (the connect hook's req.claims). Verify sets it; Mint ignores it.
	// Treat it as read-only.
	Claims map[string]any
}

// Verifier checks tokens against a fixed set of keys. It is safe for
// concurrent use and never changes after New.
type Verifier struct {
	parser   *jwt.Parser
	byAlg    map[string][]keyEntry // alg → the keys admitting it, never empty
	methods  []string              // the keys of byAlg, sorted
	issuer   string                // Config.Issuer
	audience string                // Config.Audience
}

// claims is the token payload moonchat reads.
type claims struct {
	jwt.RegisteredClaims
	Name      string           `json:"name,omitempty"`
	Roles     []string         `json:"roles,omitempty"`
	Rooms     []string         `json:"rooms,omitempty"`
	LoginTime *jwt.NumericDate `json:"login_time,omitempty"`
	// all is every claim of the payload, for Identity.Claims; filled by
	// UnmarshalJSON, never marshalled.
	all map[string]any
}

// UnmarshalJSON decodes the payload twice: into the fields moonchat
// checks and, whole, into all, so that scripts see every claim.
func (c *claims) UnmarshalJSON(data []byte) error {
	type fields claims // the same fields without this method
	if err := json.Unmarshal(data, (*fields)(c)); err != nil {
		return err
	}
	return json.Unmarshal(data, &c.all)
}

// New builds a Verifier, refusing a Config with no key, a weak or
// unreadable key, or a leeway out of range.
func New(cfg Config) (*Verifier, error) {
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: leeway %v out of range [0, %v]", cfg.Leeway, MaxLeeway)
	}
	var entries []keyEntry
	if cfg.Secret != nil {
		if len(cfg.Secret) < MinSecretLen {
			return nil, fmt.Errorf("auth: secret of %d bytes, need at least %d (RFC 7518 section 3.2)", len(cfg.Secret), MinSecretLen)
		}
		entries = append(entries, keyEntry{key: slices.Clone(cfg.Secret)})
	}
	for _, src := range cfg.PublicKeys {
		keys, err := loadPublicKeys(src)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		entries = append(entries, keys...)
	}
	if len(entries) == 0 {
		return nil, errors.New("auth: no key configured (need a secret or public keys)")
	}
	v := &Verifier{byAlg: make(map[string][]keyEntry), issuer: cfg.Issuer, audience: cfg.Audience}
	for _, e := range entries {
		algs, err := algorithms(e.key)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		for _, alg := range algs {
			v.byAlg[alg] = append(v.byAlg[alg], e)
		}
	}
	v.methods = slices.Sorted(maps.Keys(v.byAlg))
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Algorithms returns the "alg" values this Verifier accepts, sorted.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.methods) }

// Verify checks a token's signature and claims and returns the identity
// it carries, or a named error: ErrNoToken for an empty string, otherwise
// one of the refusals matching ErrBadToken. Besides the signature it
// checks "exp", "nbf" and "iat" (none may put the token in the future or
// the past beyond the leeway), "iss" and "aud" when configured. The
// error never contains the token.
func (v *Verifier) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if len(token) > MaxTokenLen {
		return Identity{}, ErrMalformed
	}
	var c claims
	tok, err := v.parser.ParseWithClaims(token, &c, v.keyFunc)
	if err != nil {
		return Identity{}, v.refusal(tok, &c, err)
	}
	return identityOf(&c)
}

// keyFunc returns the keys that may verify tok: only keys of its
// algorithm (the parser has already refused any other algorithm), and
// only the one its "kid" names when that matches a configured key.
func (v *Verifier) keyFunc(tok *jwt.Token) (any, error) {
	if _, ok := tok.Header["crit"]; ok {
		// RFC 7515 section 4.1.11: a token naming critical extensions
		// must be refused by a verifier that understands none of them.
		return nil, ErrMalformed
	}
	keys := v.byAlg[tok.Method.Alg()]
	if len(keys) == 0 { // unreachable behind WithValidMethods; fail closed anyway
		return nil, ErrWrongAlgorithm
	}
	set := jwt.VerificationKeySet{}
	if kid, ok := tok.Header["kid"].(string); ok && kid != "" {
		for _, k := range keys {
			if k.id == kid {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	if len(set.Keys) == 0 { // no kid, or one we do not know: try every key of the family
		for _, k := range keys {
			set.Keys = append(set.Keys, k.key)
		}
	}
	return set, nil
}

// refusal names the reason jwt refused a token. The library's error text
// is dropped: it may quote parts of the token.
func (v *Verifier) refusal(tok *jwt.Token, c *claims, err error) error {
	if r, ok := errors.AsType[refusal](err); ok { // keyFunc's own verdict
		return r
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// An "alg" the library does not know.
		return ErrWrongAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok == nil || tok.Method == nil || v.byAlg[tok.Method.Alg()] == nil {
			return ErrWrongAlgorithm
		}
		return ErrBadSignature
	}
	// The signature verified: the claims were refused. Who the token is
	// for comes before when it is valid.
	switch {
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrWrongAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// iss, aud or exp is missing; the library says which only in
		// its text, so look at the claims themselves.
		switch {
		case v.issuer != "" && c.Issuer == "":
			return ErrWrongIssuer
		case v.audience != "" && len(c.Audience) == 0:
			return ErrWrongAudience
		case c.ExpiresAt == nil:
			return ErrMissingExp
		}
		return ErrBadClaims
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	}
	return ErrBadClaims
}

// identityOf checks the moonchat claims of a verified token.
func identityOf(c *claims) (Identity, error) {
	if c.Subject == "" {
		return Identity{}, ErrMissingSub
	}
	if !cleanText(c.Subject, MaxIDLen) {
		return Identity{}, ErrBadClaims
	}
	id := Identity{ID: c.Subject, Name: c.Name, Roles: c.Roles, Rooms: c.Rooms}
	if id.Name == "" {
		id.Name = id.ID
	}
	if !cleanText(id.Name, MaxNameLen) || !cleanList(id.Roles) || !cleanList(id.Rooms) {
		return Identity{}, ErrBadClaims
	}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	if c.LoginTime != nil {
		id.LoginTime = c.LoginTime.Time
	}
	id.Claims = c.all
	return id, nil
}

// cleanText reports whether s is non-empty valid UTF-8 of at most max
// bytes without control characters (which could forge log lines or
// wire frames).
func cleanText(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

// cleanList reports whether every entry of a roles or rooms list is clean.
func cleanList(list []string) bool {
	if len(list) > MaxListLen {
		return false
	}
	for _, s := range list {
		if !cleanText(s, MaxEntryLen) {
			return false
		}
	}
	return true
}
