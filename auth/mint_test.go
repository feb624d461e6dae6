package auth_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/auth"
)

func TestMintedTokenVerifies(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	m, err := auth.NewMinter(auth.MinterConfig{Secret: secret, Issuer: "moonchat", Audience: "chat", TTL: 15 * time.Minute, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := m.Mint(auth.Identity{ID: "acct:bob", Name: "bob", Roles: []string{"user"}, Rooms: []string{"team-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(t0.Add(15 * time.Minute)) {
		t.Fatalf("expires %v", exp)
	}
	v := mustNew(t, auth.Config{Secret: secret, Issuer: "moonchat", Audience: "chat", RequireExp: true, Now: fixedNow})
	id, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(minted): %v", err)
	}
	if id.ID != "acct:bob" || id.Name != "bob" || !slices.Equal(id.Roles, []string{"user"}) ||
		!slices.Equal(id.Rooms, []string{"team-*"}) || !id.Expires.Equal(exp) {
		t.Fatalf("identity %+v", id)
	}
	// Short-lived: the same token is refused once its TTL has passed.
	late := mustNew(t, auth.Config{Secret: secret, Issuer: "moonchat", Audience: "chat", RequireExp: true,
		Now: func() time.Time { return t0.Add(16 * time.Minute) }})
	if _, err := late.Verify(tok); err != auth.ErrExpired {
		t.Fatalf("Verify after TTL: %v, want ErrExpired", err)
	}
	// Signed with this secret only.
	other := mustNew(t, auth.Config{Secret: bytes.Repeat([]byte{8}, 32), Now: fixedNow})
	if _, err := other.Verify(tok); err != auth.ErrBadSignature {
		t.Fatalf("Verify with another secret: %v, want ErrBadSignature", err)
	}
}

func TestMinterRefusals(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	for _, cfg := range []auth.MinterConfig{
		{Secret: []byte("short")},
		{Secret: secret, TTL: -time.Second},
		{Secret: secret, TTL: auth.MaxMintTTL + time.Second},
	} {
		if _, err := auth.NewMinter(cfg); err == nil {
			t.Errorf("NewMinter(secret %d bytes, TTL %v) accepted", len(cfg.Secret), cfg.TTL)
		}
	}
	m, err := auth.NewMinter(auth.MinterConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   auth.Identity
		want error
	}{
		{auth.Identity{Name: "nobody"}, auth.ErrMissingSub},
		{auth.Identity{ID: "a\x00b"}, auth.ErrBadClaims},
		{auth.Identity{ID: "a", Roles: []string{""}}, auth.ErrBadClaims},
	} {
		if tok, _, err := m.Mint(tc.id); !errors.Is(err, tc.want) || tok != "" {
			t.Errorf("Mint(%+v) = %q, %v; want %v", tc.id, tok, err, tc.want)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, auth.SecretFileName)
	first, err := auth.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) < auth.MinSecretLen {
		t.Fatalf("secret of %d bytes", len(first))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %04o, want 0600", perm)
	}
	// A restart loads the same key, so tokens minted before still verify.
	again, err := auth.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Fatal("second load gave another secret")
	}
	// No temporary file is left beside it.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key", len(entries))
	}
	// Two different files give different secrets.
	other, err := auth.LoadOrCreateSecret(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, other) {
		t.Fatal("two new key files hold the same secret")
	}
}

func TestLoadOrCreateSecretConcurrentCreatorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), auth.SecretFileName)
	const n = 8
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = auth.LoadOrCreateSecret(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("creator %d got another secret", i)
		}
	}
}

func TestLoadOrCreateSecretRefusesUnsafeFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if _, err := auth.LoadOrCreateSecret(good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is cut by the umask
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, path string }{
		{"readable by others", write("open.key", data, 0o644)},
		{"readable by group", write("group.key", data, 0o640)},
		{"too short", write("short.key", []byte("c2hvcnQ\n"), 0o600)},
		{"not base64url", write("junk.key", []byte("!!! not a key !!!\n"), 0o600)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.path)
			if s, err := auth.LoadOrCreateSecret(tc.path); err == nil {
				t.Fatalf("accepted: %d bytes", len(s))
			}
			after, _ := os.ReadFile(tc.path)
			if !bytes.Equal(before, after) {
				t.Fatal("refused file was rewritten")
			}
		})
	}
	t.Run("directory missing", func(t *testing.T) {
		if _, err := auth.LoadOrCreateSecret(filepath.Join(dir, "no", "such", "dir", "k.key")); err == nil {
			t.Fatal("created a key in a missing directory")
		}
	})
}

// TestMintLoginTimeAndCap (issue 12, /api/token renewals): a minted
// token carries its login time as "login_time", which Verify returns; an
// Expires earlier than the TTL caps the token's expiry, and one not after
// now is refused.
func TestMintLoginTimeAndCap(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	m, err := auth.NewMinter(auth.MinterConfig{Secret: secret, TTL: time.Hour, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	login := t0.Add(-23 * time.Hour)
	tok, exp, err := m.Mint(auth.Identity{ID: "acct:bob", LoginTime: login, Expires: login.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(t0.Add(time.Hour)) {
		t.Errorf("expires %v, want the TTL (the cap is later)", exp)
	}
	tok2, exp2, err := m.Mint(auth.Identity{ID: "acct:bob", LoginTime: login, Expires: t0.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !exp2.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("expires %v, want the cap", exp2)
	}
	if _, _, err := m.Mint(auth.Identity{ID: "acct:bob", Expires: t0}); !errors.Is(err, auth.ErrExpired) {
		t.Errorf("Mint with Expires = now: %v, want ErrExpired", err)
	}
	v := mustNew(t, auth.Config{Secret: secret, RequireExp: true, Now: fixedNow})
	for _, tk := range []string{tok, tok2} {
		id, err := v.Verify(tk)
		if err != nil {
			t.Fatal(err)
		}
		if !id.LoginTime.Equal(login) {
			t.Errorf("login time %v, want %v", id.LoginTime, login)
		}
		if id.Claims["sub"] != "acct:bob" || id.Claims["login_time"] != float64(login.Unix()) {
			t.Errorf("claims %v", id.Claims)
		}
	}
	// A token without it has none.
	plain, _, err := m.Mint(auth.Identity{ID: "acct:bob"})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(plain); err != nil || !id.LoginTime.IsZero() {
		t.Errorf("plain token: %+v, %v; want no login time", id, err)
	}
}
