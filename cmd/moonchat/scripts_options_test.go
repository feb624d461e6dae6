package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/moonchat/moonchat/scripting"
)

// [scripts.NAME] tables travel from config.toml to Config.Scripts as the
// decoder gives them; [scripts] holds tables only.
func TestConfigScriptOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte("[scripts.wordfilter]\nwords = [\"gosh\", \"golly\"]\n[scripts.other]\nn = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{"wordfilter": {"words": []any{"gosh", "golly"}}, "other": {"n": int64(3)}}
	if !reflect.DeepEqual(cfg.Scripts, want) {
		t.Fatalf("Scripts = %#v, want %#v", cfg.Scripts, want)
	}
	def, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Scripts) != 0 {
		t.Fatalf("built-in defaults set [scripts]: %v", def.Scripts)
	}
	if err := os.WriteFile(path, []byte("[scripts]\nwordfilter = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "[scripts] wordfilter: must be a table ([scripts.wordfilter]), got integer 1") {
		t.Fatalf("[scripts] wordfilter = 1: %v", err)
	}
}

// SIGHUP re-reads [scripts.NAME] from the config file and reloads the
// scripts with it; a config file that no longer loads keeps the settings
// the scripts run with, and the scripts still reload.
func TestSIGHUPRereadsScriptOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[scripts.a]\nv = \"one\"\n")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	eng, err := scripting.New(t.Context(), scripting.Options{
		FS:            fstest.MapFS{"a.lua": {Data: []byte(`chat.log("v=" .. tostring(chat.options.v))`)}},
		Logger:        log,
		ScriptOptions: cfg.Scripts,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	s := &server{cfg: cfg, log: log, lua: eng}
	if !strings.Contains(buf.String(), `msg="v=one"`) {
		t.Fatalf("at start:\n%s", buf.String())
	}

	buf.Reset()
	write("[scripts.a]\nv = \"two\"\n")
	s.reload()
	if out := buf.String(); !strings.Contains(out, `msg="v=two"`) || !strings.Contains(out, `msg="SIGHUP: [scripts] settings changed"`) {
		t.Fatalf("after SIGHUP:\n%s", out)
	}

	buf.Reset()
	write("[scripts.a]\nv = \n")
	s.reload()
	out := buf.String()
	if !strings.Contains(out, `level=ERROR msg="SIGHUP: config not re-read; the scripts keep their [scripts] settings"`) ||
		!strings.Contains(out, `msg="v=two"`) || !strings.Contains(out, "cause=SIGHUP") {
		t.Fatalf("after SIGHUP with a broken config:\n%s", out)
	}
}

// moonchat check passes the options to the scripts (a script refusing its
// options fails the check) and warns about a table for no script.
func TestCheckScriptOptions(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("config.toml", []byte("[scripts.wordfilter]\nwords = \"darn\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "check")
	if code != 1 || !strings.Contains(stderr, "wordfilter.lua") || !strings.Contains(stderr, "words must be a list of words") {
		t.Fatalf("check with words as a string: exit %d\n%s", code, stderr)
	}
	if err := os.WriteFile("config.toml", []byte("[scripts.wordfilter]\nwords = [\"gosh\"]\n[scripts.nosuch]\nx = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "check")
	if code != 0 || !strings.HasSuffix(stdout, "ok\n") {
		t.Fatalf("check: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, "[scripts.nosuch] names no loaded script") || strings.Contains(stderr, "[scripts.wordfilter] names") {
		t.Fatalf("check's warnings:\n%s", stderr)
	}
}
