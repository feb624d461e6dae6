package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/moonchat/moonchat/scripting"
)

// `moonchat check` prints lint warnings with file:line and still passes:
// the scripts load, so they would run.
func TestCheckLintWarnings(t *testing.T) {
	t.Chdir(t.TempDir())
	writeScripts(t, ".", map[string]string{
		"f.lua": "chat.on(\"message\", function(msg)\n  msg.txet = \"x\"\n  chat.boradcast(msg.room, \"hi\")\nend)\n",
	})
	code, stdout, stderr := runCmd(t, "check")
	want := "config: built-in defaults (no ./config.toml)\n" +
		"scripts: directory scripts (1: f.lua)\n" +
		"warning: f.lua:2: msg.txet looks like a typo of msg.text\n" +
		"warning: f.lua:3: chat.boradcast looks like a typo of chat.broadcast\n" +
		"ok\n"
	if code != 0 || stdout != want {
		t.Errorf("code %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, stdout, want, stderr)
	}
}

// Shadow scripts are listed apart from the live ones; one that is missing
// or does not load fails the check (the server would only log it).
func TestCheckShadow(t *testing.T) {
	t.Chdir(t.TempDir())
	writeScripts(t, ".", map[string]string{
		"live.lua": "chat.on(\"message\", function(msg) end)\n",
		"new.lua":  "chat.on(\"message\", function(msg) return false end)\n",
	})
	os.WriteFile("config.toml", []byte("[scripting]\nshadow = [\"new.lua\"]\n"), 0o644)
	code, stdout, stderr := runCmd(t, "check")
	want := "config: config.toml\nscripts: directory scripts (1: live.lua)\n" +
		"shadow scripts: new.lua (decisions logged and counted, never applied)\nok\n"
	if code != 0 || stdout != want {
		t.Errorf("code %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, stdout, want, stderr)
	}

	os.WriteFile("config.toml", []byte("[scripting]\nshadow = [\"gone.lua\"]\n"), 0o644)
	code, stdout, stderr = runCmd(t, "check")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "shadow script gone.lua: no such file") {
		t.Errorf("missing shadow: code %d stdout %q stderr %q, want 1 and the error", code, stdout, stderr)
	}
	os.WriteFile(filepath.Join("scripts", "new.lua"), []byte("error('nope')\n"), 0o644)
	os.WriteFile("config.toml", []byte("[scripting]\nshadow = [\"new.lua\"]\n"), 0o644)
	if code, _, stderr = runCmd(t, "check"); code != 1 || !strings.Contains(stderr, "new.lua:1: nope") {
		t.Errorf("broken shadow: code %d stderr %q, want 1 and new.lua:1", code, stderr)
	}
}

// [scripting] shadow and disable_after are validated.
func TestConfigShadowDisableAfter(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"disable_after = -1", "[scripting] disable_after: must be 0 (never) or more, got -1"},
		{`shadow = ["sub/x.lua"]`, `[scripting] shadow: "sub/x.lua" must be the file name of a script`},
		{`shadow = ["x.txt"]`, `[scripting] shadow: "x.txt" must be the file name`},
		{`shadow = ["x_test.lua"]`, `"x_test.lua" is a script test`},
		{`shadow = ["a.lua", "a.lua"]`, `"a.lua" is listed twice`},
	} {
		p := filepath.Join(t.TempDir(), "config.toml")
		os.WriteFile(p, []byte("[scripting]\n"+tc.toml+"\n"), 0o644)
		if _, err := loadConfig(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.toml, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(p, []byte("[scripting]\ndisable_after = 0\nshadow = [\"a.lua\"]\n"), 0o644)
	cfg, err := loadConfig(p)
	if err != nil || cfg.Scripting.DisableAfter != 0 || len(cfg.Scripting.Shadow) != 1 {
		t.Fatalf("good config: %+v %v", cfg.Scripting, err)
	}
	if disableAfter(0) >= 0 || disableAfter(5) != 5 {
		t.Error("disable_after 0 must reach the engine as never (negative), others as they are")
	}
	def, err := loadConfig("")
	if err != nil || def.Scripting.DisableAfter != 20 || len(def.Scripting.Shadow) != 0 {
		t.Errorf("defaults: disable_after %d shadow %v (%v), want 20 and none", def.Scripting.DisableAfter, def.Scripting.Shadow, err)
	}
}

// SIGHUP re-reads [scripting] shadow: a script named there leaves the live
// scripts for the shadow ones at that reload.
func TestConfigShadowSIGHUP(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	eng, err := scripting.New(t.Context(), scripting.Options{FS: fstest.MapFS{"a.lua": {}, "b.lua": {}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	p := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(p, []byte("[scripting]\nshadow = [\"b.lua\"]\n"), 0o644)
	s := &server{cfg: &Config{Source: p}, log: log, lua: eng}
	s.reload()
	out := buf.String()
	for _, want := range []string{
		`msg="SIGHUP: [scripting] shadow changed"`,
		`msg="lua shadow scripts loaded (decisions logged and counted, never applied)" cause=SIGHUP scripts=b.lua`,
		`msg="lua scripts loaded" cause=SIGHUP scripts=a.lua` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
