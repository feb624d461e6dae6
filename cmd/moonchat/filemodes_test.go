package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitConfigMode: `moonchat init` writes config.toml readable by its
// owner only (it is where jwt_secret and [admin] token go); the scripts
// stay 0644.
func TestInitConfigMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	if code, _, stderr := runCmd(t, "init", "-dir", dir); code != 0 {
		t.Fatalf("init: code %d stderr %q", code, stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("config.toml mode %v, want 0600", mode)
	}
}

// TestFileModeWarnings: serve warns once at start-up when the config file
// in use holds a secret and group or others can read it, and when the
// database can be read by group or others; not when both are 0600, and
// not about a config without secrets.
func TestFileModeWarnings(t *testing.T) {
	const cfgWarn, dbWarn = "the config file holds secrets but is readable by group or others", "the database (every room's history) is readable by group or others"
	dir := t.TempDir()
	cfg := testConfig(t, dir, nil)
	plain, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "moonchat.db")
	start := func(mode os.FileMode) string {
		t.Helper()
		if err := os.Chmod(cfg, mode); err != nil {
			t.Fatal(err)
		}
		p := startInProcess(t, cfg)
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit code %d:\n%s", code, p.log)
		}
		return p.log.String()
	}

	// No secret in a 0644 config; the database bbolt creates is 0600.
	if l := start(0o644); strings.Contains(l, cfgWarn) || strings.Contains(l, dbWarn) {
		t.Fatalf("warned without cause:\n%s", l)
	}
	withSecret := string(plain) + "[auth]\njwt_secret = \"" + testSecret + "\"\n"
	if err := os.WriteFile(cfg, []byte(withSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o640); err != nil {
		t.Fatal(err)
	}
	l := start(0o644)
	if strings.Count(l, cfgWarn) != 1 || !strings.Contains(l, `holds="[auth] jwt_secret"`) || strings.Count(l, dbWarn) != 1 {
		t.Fatalf("want one warning each about config.toml and the database:\n%s", l)
	}
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}
	if l := start(0o600); strings.Contains(l, cfgWarn) || strings.Contains(l, dbWarn) {
		t.Fatalf("warned about 0600 files:\n%s", l)
	}
}
