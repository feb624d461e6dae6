package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moonchat/moonchat/auth"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// keys are signing keys generated for one test, with their public PEMs.
type keys struct {
	secret              []byte
	rsa, rsaOther       *rsa.PrivateKey
	p256, p256b, p384   *ecdsa.PrivateKey
	p521                *ecdsa.PrivateKey
	ed, edOther         ed25519.PrivateKey
	rsaPEM, p256PEM     []byte
	p384PEM, edPEM      []byte
	p521PEM, p256bPEM   []byte
	rsaOtherPEM, edPEMb []byte
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	k := &keys{secret: []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	k.p256, k.p256b, k.p384, k.p521 = ec(elliptic.P256()), ec(elliptic.P256()), ec(elliptic.P384()), ec(elliptic.P521())
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.edOther, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM, k.rsaOtherPEM = pemOf(t, k.rsa.Public()), pemOf(t, k.rsaOther.Public())
	k.p256PEM, k.p256bPEM = pemOf(t, k.p256.Public()), pemOf(t, k.p256b.Public())
	k.p384PEM, k.p521PEM = pemOf(t, k.p384.Public()), pemOf(t, k.p521.Public())
	k.edPEM, k.edPEMb = pemOf(t, k.ed.Public()), pemOf(t, k.edOther.Public())
	return k
}

// pemOf encodes a public key as a PKIX "PUBLIC KEY" PEM block.
func pemOf(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign makes a token with the given method, key, claims and header extras.
func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// good returns claims a verifier with issuer "app", audience "moonchat"
// accepts at t0; edit modifies them.
func good(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":   "u-42",
		"name":  "alice",
		"roles": []string{"user", "mod"},
		"iss":   "app",
		"aud":   "moonchat",
		"iat":   t0.Add(-time.Minute).Unix(),
		"exp":   t0.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestNewRefusesBadConfig(t *testing.T) {
	k := newKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.p256)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  auth.Config
	}{
		{"no key", auth.Config{}},
		{"short secret", auth.Config{Secret: []byte("short")}},
		{"31-byte secret", auth.Config{Secret: k.secret[:31]}},
		{"negative leeway", auth.Config{Secret: k.secret, Leeway: -time.Second}},
		{"leeway too large", auth.Config{Secret: k.secret, Leeway: time.Hour}},
		{"RSA 1024", auth.Config{PublicKeys: []auth.PublicKey{{PEM: pemOf(t, small.Public())}}}},
		{"P-224", auth.Config{PublicKeys: []auth.PublicKey{{PEM: pemOf(t, p224.Public())}}}},
		{"private key", auth.Config{PublicKeys: []auth.PublicKey{{PEM: privPEM}}}},
		{"no PEM block", auth.Config{PublicKeys: []auth.PublicKey{{Path: garbage}}}},
		{"missing file", auth.Config{PublicKeys: []auth.PublicKey{{Path: filepath.Join(dir, "nope.pem")}}}},
		{"path and PEM", auth.Config{PublicKeys: []auth.PublicKey{{Path: garbage, PEM: k.rsaPEM}}}},
		{"empty source", auth.Config{PublicKeys: []auth.PublicKey{{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := auth.New(tc.cfg); err == nil {
				t.Fatalf("New accepted it: algorithms %v", v.Algorithms())
			}
		})
	}
}

func TestAlgorithmsPinnedToKeyTypes(t *testing.T) {
	k := newKeys(t)
	for _, tc := range []struct {
		name string
		cfg  auth.Config
		want []string
	}{
		{"64-byte secret", auth.Config{Secret: k.secret}, []string{"HS256", "HS384", "HS512"}},
		{"48-byte secret", auth.Config{Secret: k.secret[:48]}, []string{"HS256", "HS384"}},
		{"32-byte secret", auth.Config{Secret: k.secret[:32]}, []string{"HS256"}},
		{"RSA", auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.rsaPEM}}}, []string{"PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}},
		{"P-256", auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.p256PEM}}}, []string{"ES256"}},
		{"P-384", auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.p384PEM}}}, []string{"ES384"}},
		{"P-521", auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.p521PEM}}}, []string{"ES512"}},
		{"Ed25519", auth.Config{PublicKeys: []auth.PublicKey{{PEM: k.edPEM}}}, []string{"EdDSA"}},
		{"P-256 and Ed25519 in one PEM", auth.Config{PublicKeys: []auth.PublicKey{{PEM: append(append([]byte{}, k.p256PEM...), k.edPEM...)}}}, []string{"ES256", "EdDSA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := auth.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := v.Algorithms()
			if len(got) != len(tc.want) {
				t.Fatalf("algorithms %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("algorithms %v, want %v", got, tc.want)
				}
			}
		})
	}
}
