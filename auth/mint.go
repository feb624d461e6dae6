package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Lifetimes of the tokens a Minter signs.
const (
	DefaultMintTTL = time.Hour
	MaxMintTTL     = 24 * time.Hour
)

// SecretFileName is the conventional name of the generated signing key,
// kept beside the database.
const SecretFileName = "moonchat-jwt.key"

// generatedSecretLen is the size of a generated secret: 256 bits, the
// HS256 hash size (RFC 7518 section 3.2).
const generatedSecretLen = 32

// MinterConfig configures a Minter.
type MinterConfig struct {
	// Secret signs the tokens (HS256); at least MinSecretLen bytes. Give
	// the Verifier the same secret so that it accepts them.
	Secret []byte
	// Issuer and Audience, when set, go into "iss" and "aud"; use the
	// Verifier's, or it refuses the minted tokens.
	Issuer   string
	Audience string
	// TTL is how long a token lives; 0 means DefaultMintTTL, at most
	// MaxMintTTL.
	TTL time.Duration
	// Now replaces time.Now in tests; nil means time.Now.
	Now func() time.Time
}

// Minter signs short-lived HS256 tokens for identities the server itself
// has established (the login hook). It is safe for concurrent use.
//
// Invariant: every token it returns carries sub, iat, nbf and an exp no
// more than MaxMintTTL ahead, so a Verifier with RequireExp accepts it.
type Minter struct {
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
}

// NewMinter builds a Minter, refusing a short secret or a TTL out of range.
func NewMinter(cfg MinterConfig) (*Minter, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: minter secret of %d bytes, need at least %d", len(cfg.Secret), MinSecretLen)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultMintTTL
	}
	if cfg.TTL < 0 || cfg.TTL > MaxMintTTL {
		return nil, fmt.Errorf("auth: minter TTL %v out of range (0, %v]", cfg.TTL, MaxMintTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Minter{
		secret:   slices.Clone(cfg.Secret),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		ttl:      cfg.TTL,
		now:      cfg.Now,
	}, nil
}

// Mint signs a token for id (ID, Name, Roles, Rooms and LoginTime, when
// set, as the "login_time" claim) and returns it with its expiry: the
// Minter's TTL from now, or id.Expires when that is set and earlier (a
// renewal that must not outlive its session's maximum age). It refuses an
// identity a Verifier would refuse, and an Expires not after now, so a
// minted token always verifies.
func (m *Minter) Mint(id Identity) (token string, expires time.Time, err error) {
	if id.ID == "" {
		return "", time.Time{}, fmt.Errorf("auth: mint: %w", ErrMissingSub)
	}
	if _, err := identityOf(&claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: id.ID},
		Name:             id.Name, Roles: id.Roles, Rooms: id.Rooms,
	}); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: mint: %w", err)
	}
	// JWT times are whole seconds (RFC 7519 section 2, NumericDate).
	now := m.now().Truncate(time.Second)
	expires = now.Add(m.ttl)
	if !id.Expires.IsZero() && id.Expires.Before(expires) {
		expires = id.Expires.Truncate(time.Second)
		if !expires.After(now) {
			return "", time.Time{}, fmt.Errorf("auth: mint: %w", ErrExpired)
		}
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   id.ID,
			Issuer:    m.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
		Name:  id.Name,
		Roles: id.Roles,
		Rooms: id.Rooms,
	}
	if !id.LoginTime.IsZero() {
		c.LoginTime = jwt.NewNumericDate(id.LoginTime.Truncate(time.Second))
	}
	if m.audience != "" {
		c.Audience = jwt.ClaimStrings{m.audience}
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(m.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: mint: %w", err)
	}
	return token, expires, nil
}

// LoadOrCreateSecret returns the signing secret kept in the file at path,
// creating it with a fresh random 256-bit secret when it does not exist.
// The file holds the secret in base64url on one line, mode 0600. It is
// created atomically (written to a temporary file, synced, then linked
// into place, so a crash or a second process never sees half a key and
// two processes racing agree on one key). An existing file is refused if
// group or others may read it, or if it holds fewer than MinSecretLen
// bytes: a leaked or weak key would let anyone mint tokens.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := loadSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	secret = make([]byte, generatedSecretLen)
	rand.Read(secret) // never fails (crypto/rand, Go 1.24+)
	if err := createFile(path, []byte(base64.RawURLEncoding.EncodeToString(secret)+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process created it first: use theirs
			return loadSecret(path)
		}
		return nil, fmt.Errorf("auth: create secret: %w", err)
	}
	return secret, nil
}

// loadSecret reads an existing secret file; a missing file is fs.ErrNotExist.
func loadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("auth: secret %s has mode %04o; it must not be readable by group or others (chmod 600)", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	secret, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("auth: secret %s is not base64url: %w", path, err)
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: secret %s holds %d bytes, need at least %d", path, len(secret), MinSecretLen)
	}
	return secret, nil
}

// createFile writes data to a new file at path with mode 0600, failing
// with fs.ErrExist if path exists. The data is durable before the name
// appears.
func createFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, unlike rename, does not replace an existing file.
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // make the new name durable
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
