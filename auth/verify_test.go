package auth_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moonchat/moonchat/auth"
)

// fullConfig trusts every kind of key, with issuer, audience, a 30 s
// leeway and exp required.
func fullConfig(k *keys) auth.Config {
	return auth.Config{
		Secret: k.secret,
		PublicKeys: []auth.PublicKey{
			{PEM: k.rsaPEM}, {PEM: k.p256PEM}, {PEM: k.p384PEM}, {PEM: k.p521PEM}, {PEM: k.edPEM},
		},
		Issuer:     "app",
		Audience:   "moonchat",
		Leeway:     30 * time.Second,
		RequireExp: true,
		Now:        fixedNow,
	}
}

func mustNew(t testing.TB, cfg auth.Config) *auth.Verifier {
	t.Helper()
	v, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAcceptsEveryKeyType(t *testing.T) {
	k := newKeys(t)
	v := mustNew(t, fullConfig(k))
	for _, tc := range []struct {
		m   jwt.SigningMethod
		key any
	}{
		{jwt.SigningMethodHS256, k.secret},
		{jwt.SigningMethodHS384, k.secret},
		{jwt.SigningMethodHS512, k.secret},
		{jwt.SigningMethodRS256, k.rsa},
		{jwt.SigningMethodRS384, k.rsa},
		{jwt.SigningMethodRS512, k.rsa},
		{jwt.SigningMethodPS256, k.rsa},
		{jwt.SigningMethodPS384, k.rsa},
		{jwt.SigningMethodPS512, k.rsa},
		{jwt.SigningMethodES256, k.p256},
		{jwt.SigningMethodES384, k.p384},
		{jwt.SigningMethodES512, k.p521},
		{jwt.SigningMethodEdDSA, k.ed},
	} {
		t.Run(tc.m.Alg(), func(t *testing.T) {
			id, err := v.Verify(sign(t, tc.m, tc.key, good(func(c jwt.MapClaims) {
				c["rooms"] = []string{"lobby", "team-*"}
			}), nil))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.ID != "u-42" || id.Name != "alice" ||
				!slices.Equal(id.Roles, []string{"user", "mod"}) ||
				!slices.Equal(id.Rooms, []string{"lobby", "team-*"}) ||
				!id.Expires.Equal(t0.Add(time.Hour)) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestVerifyDefaultsAndOptionalClaims(t *testing.T) {
	k := newKeys(t)
	t.Run("name defaults to sub, rooms absent is nil", func(t *testing.T) {
		v := mustNew(t, fullConfig(k))
		id, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, good(func(c jwt.MapClaims) {
			delete(c, "name")
			delete(c, "roles")
		}), nil))
		if err != nil {
			t.Fatal(err)
		}
		if id.Name != "u-42" || id.Roles != nil || id.Rooms != nil {
			t.Fatalf("identity %+v", id)
		}
	})
	t.Run("empty rooms list allows none", func(t *testing.T) {
		v := mustNew(t, fullConfig(k))
		id, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, good(func(c jwt.MapClaims) {
			c["rooms"] = []string{}
		}), nil))
		if err != nil {
			t.Fatal(err)
		}
		if id.Rooms == nil || len(id.Rooms) != 0 {
			t.Fatalf("rooms %#v, want empty non-nil", id.Rooms)
		}
	})
	t.Run("exp optional when not required", func(t *testing.T) {
		cfg := fullConfig(k)
		cfg.RequireExp = false
		id, err := mustNew(t, cfg).Verify(sign(t, jwt.SigningMethodHS256, k.secret, good(func(c jwt.MapClaims) {
			delete(c, "exp")
		}), nil))
		if err != nil {
			t.Fatal(err)
		}
		if !id.Expires.IsZero() {
			t.Fatalf("expires %v, want zero", id.Expires)
		}
	})
	t.Run("expired within leeway", func(t *testing.T) {
		_, err := mustNew(t, fullConfig(k)).Verify(sign(t, jwt.SigningMethodHS256, k.secret, good(func(c jwt.MapClaims) {
			c["exp"] = t0.Add(-10 * time.Second).Unix()
		}), nil))
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("audience list containing ours", func(t *testing.T) {
		_, err := mustNew(t, fullConfig(k)).Verify(sign(t, jwt.SigningMethodHS256, k.secret, good(func(c jwt.MapClaims) {
			c["aud"] = []string{"other", "moonchat"}
		}), nil))
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestVerifyRefusals is the table of every refusal: each token is
// refused with its named error, the error matches ErrBadToken, and its
// text holds no part of the token.
func TestVerifyRefusals(t *testing.T) {
	k := newKeys(t)
	full := fullConfig(k)
	rsaOnly := auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.rsaPEM}}, Now: fixedNow}
	p384Only := auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.p384PEM}}, Now: fixedNow}
	p256Only := auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.p256PEM}}, Now: fixedNow}
	edOnly := auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.edPEM}}, Now: fixedNow}
	secret32 := auth.Config{Secret: k.secret[:32], Now: fixedNow}
	hs := func(edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, k.secret, good(edit), nil)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	// A validly signed HS256 token whose header names an algorithm nobody knows.
	unknownAlg := func() string {
		s := hs(nil)
		parts := strings.Split(s, ".")
		parts[0] = b64([]byte(`{"alg":"XX256","typ":"JWT"}`))
		return strings.Join(parts, ".")
	}()
	// An ES256 header on an ES384 signature (a P-384 key posing as P-256).
	es384AsES256 := func() string {
		parts := strings.Split(sign(t, jwt.SigningMethodES384, k.p384, good(nil), nil), ".")
		parts[0] = b64([]byte(`{"alg":"ES256","typ":"JWT"}`))
		return strings.Join(parts, ".")
	}()
	// The HS256 token an attacker makes with the RSA public key as secret.
	confusion := sign(t, jwt.SigningMethodHS256, k.rsaPEM, good(nil), nil)
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good(nil), nil)

	for _, tc := range []struct {
		name  string
		cfg   auth.Config
		token string
		want  error
	}{
		{"empty", full, "", auth.ErrNoToken},
		{"one segment", full, "garbage", auth.ErrMalformed},
		{"three junk segments", full, "a.b.c", auth.ErrMalformed},
		{"header not JSON", full, b64([]byte("nope")) + "." + b64([]byte(`{"sub":"x"}`)) + ".sig", auth.ErrMalformed},
		{"roles not a list", full, hs(func(c jwt.MapClaims) { c["roles"] = "admin" }), auth.ErrMalformed},
		{"exp not a number", full, hs(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), auth.ErrMalformed},
		{"none", full, none, auth.ErrWrongAlgorithm},
		{"none, unsigned with empty signature", full, strings.TrimSuffix(none, ".") + ".", auth.ErrWrongAlgorithm},
		{"unknown alg", full, unknownAlg, auth.ErrWrongAlgorithm},
		{"HS512 with a 32-byte secret (RFC 7518 3.2)", secret32, sign(t, jwt.SigningMethodHS512, k.secret[:32], good(nil), nil), auth.ErrWrongAlgorithm},
		{"critical extension (RFC 7515 4.1.11)", full, sign(t, jwt.SigningMethodHS256, k.secret, good(nil), map[string]any{"crit": []string{"exp"}}), auth.ErrMalformed},
		{"too long", full, hs(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", auth.MaxTokenLen) }), auth.ErrMalformed},
		{"HS256 with RSA public key as secret, no secret configured", rsaOnly, confusion, auth.ErrWrongAlgorithm},
		{"HS256 with RSA public key as secret, secret configured", full, confusion, auth.ErrBadSignature},
		{"ES256 token, only a P-384 key", p384Only, sign(t, jwt.SigningMethodES256, k.p256, good(nil), nil), auth.ErrWrongAlgorithm},
		{"ES384 token, only a P-256 key", p256Only, sign(t, jwt.SigningMethodES384, k.p384, good(nil), nil), auth.ErrWrongAlgorithm},
		{"ES384 signature under an ES256 header", full, es384AsES256, auth.ErrBadSignature},
		{"RS256 token, only an Ed25519 key", edOnly, sign(t, jwt.SigningMethodRS256, k.rsa, good(nil), nil), auth.ErrWrongAlgorithm},
		{"HS256 wrong secret", full, sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two by"), good(nil), nil), auth.ErrBadSignature},
		{"RS256 other key", full, sign(t, jwt.SigningMethodRS256, k.rsaOther, good(nil), nil), auth.ErrBadSignature},
		{"PS256 other key", full, sign(t, jwt.SigningMethodPS256, k.rsaOther, good(nil), nil), auth.ErrBadSignature},
		{"ES256 other key", full, sign(t, jwt.SigningMethodES256, k.p256b, good(nil), nil), auth.ErrBadSignature},
		{"EdDSA other key", full, sign(t, jwt.SigningMethodEdDSA, k.edOther, good(nil), nil), auth.ErrBadSignature},
		{"payload altered", full, func() string {
			parts := strings.Split(hs(nil), ".")
			parts[1] = b64([]byte(`{"sub":"admin","iss":"app","aud":"moonchat","exp":` + "9999999999" + `}`))
			return strings.Join(parts, ".")
		}(), auth.ErrBadSignature},
		{"expired", full, hs(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() }), auth.ErrExpired},
		{"not yet valid (nbf)", full, hs(func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Minute).Unix() }), auth.ErrNotYetValid},
		{"issued in the future (iat)", full, hs(func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Minute).Unix() }), auth.ErrNotYetValid},
		{"missing exp", full, hs(func(c jwt.MapClaims) { delete(c, "exp") }), auth.ErrMissingExp},
		{"wrong issuer", full, hs(func(c jwt.MapClaims) { c["iss"] = "evil" }), auth.ErrWrongIssuer},
		{"missing issuer", full, hs(func(c jwt.MapClaims) { delete(c, "iss") }), auth.ErrWrongIssuer},
		{"wrong issuer and expired", full, hs(func(c jwt.MapClaims) {
			c["iss"] = "evil"
			c["exp"] = t0.Add(-time.Hour).Unix()
		}), auth.ErrWrongIssuer},
		{"wrong audience", full, hs(func(c jwt.MapClaims) { c["aud"] = "other" }), auth.ErrWrongAudience},
		{"missing audience", full, hs(func(c jwt.MapClaims) { delete(c, "aud") }), auth.ErrWrongAudience},
		{"missing sub", full, hs(func(c jwt.MapClaims) { delete(c, "sub") }), auth.ErrMissingSub},
		{"empty sub", full, hs(func(c jwt.MapClaims) { c["sub"] = "" }), auth.ErrMissingSub},
		{"sub with a newline", full, hs(func(c jwt.MapClaims) { c["sub"] = "bob\nadmin" }), auth.ErrBadClaims},
		{"sub too long", full, hs(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("x", auth.MaxIDLen+1) }), auth.ErrBadClaims},
		{"name too long", full, hs(func(c jwt.MapClaims) { c["name"] = strings.Repeat("n", auth.MaxNameLen+1) }), auth.ErrBadClaims},
		{"empty role", full, hs(func(c jwt.MapClaims) { c["roles"] = []string{"user", ""} }), auth.ErrBadClaims},
		{"too many rooms", full, hs(func(c jwt.MapClaims) { c["rooms"] = make([]string, auth.MaxListLen+1) }), auth.ErrBadClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustNew(t, tc.cfg)
			id, err := v.Verify(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tc.want)
			}
			if err != tc.want {
				t.Fatalf("error %q is not the named value %q itself", err, tc.want)
			}
			if (tc.want != auth.ErrNoToken) != errors.Is(err, auth.ErrBadToken) {
				t.Fatalf("errors.Is(%v, ErrBadToken) = %v", err, errors.Is(err, auth.ErrBadToken))
			}
			if id.ID != "" {
				t.Fatalf("refused token still gave identity %+v", id)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) >= 4 && strings.Contains(err.Error(), part) {
					t.Fatalf("error %q quotes the token", err)
				}
			}
		})
	}
}

// TestVerifyHonoursKid: a "kid" naming a configured key restricts the
// check to that key; an unknown kid falls back to every key of the family.
func TestVerifyHonoursKid(t *testing.T) {
	k := newKeys(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	if err := os.WriteFile(a, k.p256PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, k.p256bPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, auth.Config{
		PublicKeys: []auth.PublicKey{{Path: a}, {Path: b}, {ID: "ed-1", PEM: k.edPEM}},
		Now:        fixedNow,
	})
	for _, tc := range []struct {
		name string
		key  any
		m    jwt.SigningMethod
		kid  string
		want error
	}{
		{"no kid, second key", k.p256b, jwt.SigningMethodES256, "", nil},
		{"kid b from the file name", k.p256b, jwt.SigningMethodES256, "b", nil},
		{"kid a but signed by b", k.p256b, jwt.SigningMethodES256, "a", auth.ErrBadSignature},
		{"unknown kid", k.p256b, jwt.SigningMethodES256, "rotated-away", nil},
		{"explicit id", k.ed, jwt.SigningMethodEdDSA, "ed-1", nil},
		{"kid of another family", k.p256, jwt.SigningMethodES256, "ed-1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]any{}
			if tc.kid != "" {
				header["kid"] = tc.kid
			}
			_, err := v.Verify(sign(t, tc.m, tc.key, good(nil), header))
			if err != tc.want {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestVerifyClaims (issue 12): Identity.Claims holds every claim of a
// verified token, its own too, for the connect hook's req.claims.
func TestVerifyClaims(t *testing.T) {
	k := newKeys(t)
	id, err := mustNew(t, fullConfig(k)).Verify(sign(t, jwt.SigningMethodHS256, k.secret, good(func(c jwt.MapClaims) {
		c["team"] = "blue"
		c["level"] = 3
		c["tags"] = []string{"a", "b"}
	}), nil))
	if err != nil {
		t.Fatal(err)
	}
	if id.Claims["team"] != "blue" || id.Claims["level"] != float64(3) || id.Claims["sub"] != "u-42" {
		t.Errorf("claims %v", id.Claims)
	}
	if tags, _ := id.Claims["tags"].([]any); len(tags) != 2 || tags[0] != "a" {
		t.Errorf("tags %#v", id.Claims["tags"])
	}
}
