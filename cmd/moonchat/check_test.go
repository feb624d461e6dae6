package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs the CLI in-process and returns exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		config  string            // config.toml content ("" = none written)
		scripts map[string]string // files in the scripts dir (nil = no dir)
		code    int
		stdout  string
		stderr  []string
	}{
		{name: "built-in defaults", code: 0,
			stdout: "config: built-in defaults (no ./config.toml)\n" +
				"scripts: built-in defaults, no directory scripts (11: delete.lua, help.lua, ignore.lua, me.lua, moderation.lua, msg.lua, nick.lua, quit.lua, welcome.lua, who.lua, wordfilter.lua)\nok\n"},
		{name: "good config and scripts",
			config:  "[chat]\ndefault_room = \"hall\"\n",
			scripts: map[string]string{"a.lua": "local n = 1\nchat.log('loaded', n)\n", "b.lua": ""},
			code:    0, stdout: "config: config.toml\nscripts: directory scripts (2: a.lua, b.lua)\nok\n"},
		{name: "empty scripts dir",
			scripts: map[string]string{},
			code:    0, stdout: "config: built-in defaults (no ./config.toml)\nscripts: directory scripts (no *.lua files: no scripts run)\nok\n"},
		{name: "scripting disabled skips scripts",
			config:  "[scripting]\nenabled = false\n",
			scripts: map[string]string{"bad.lua": "this is not lua"},
			code:    0, stdout: "config: config.toml\nscripts: none, scripting is off ([scripting] enabled = false)\nok\n"},
		{name: "bad config",
			config: "[server]\nping_interval = \"3x\"\n[chat]\nflod_rate = 2\n",
			code:   1,
			stderr: []string{`moonchat check: config.toml: [server] ping_interval: invalid duration "3x"`,
				"config.toml: unknown key [chat] flod_rate"}},
		{name: "syntax error in a script",
			scripts: map[string]string{"good.lua": "local x = 1\n", "broken.lua": "local x = 1\nif x then\n"},
			code:    1,
			stderr:  []string{"moonchat check: scripts (", "broken.lua:"}},
		{name: "script failing at load",
			scripts: map[string]string{"boom.lua": "local t = nil\nlocal y = t.field\n"},
			code:    1,
			stderr:  []string{"boom.lua:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			if tt.config != "" {
				if err := os.WriteFile("config.toml", []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.scripts != nil {
				if err := os.Mkdir("scripts", 0o755); err != nil {
					t.Fatal(err)
				}
				for name, src := range tt.scripts {
					if err := os.WriteFile(filepath.Join("scripts", name), []byte(src), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			code, stdout, stderr := runCmd(t, "check")
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.code == 0 && stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if tt.code != 0 && stdout != "" {
				t.Errorf("stdout %q on failure, want nothing", stdout)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q\ndoes not contain %q", stderr, w)
				}
			}
		})
	}
}

func TestCheckExplicitConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "my.toml")
	if err := os.WriteFile(p, []byte("[chat]\nreplay = -3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "check", "-config", p)
	if code != 1 || !strings.Contains(stderr, p+": [chat] replay: must be between 0 and 500, got -3") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "check", "-config", filepath.Join(dir, "missing.toml"))
	if code != 1 || !strings.Contains(stderr, "missing.toml") {
		t.Fatalf("missing file: code %d stderr %q", code, stderr)
	}
}

// TestCLIUsage (issue 10.8): -h and help list every command; a command's
// -h lists its flags on stdout, hidden ones left out, defaults quoted only
// for strings; a flag error is printed once, then the usage, exit 2.
func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: code %d stderr %q", args, code, stderr)
		}
		for _, c := range commands() {
			if !strings.Contains(stdout, "\n  "+c.name+" ") {
				t.Errorf("%v does not list %s:\n%s", args, c.name, stdout)
			}
		}
	}
	for _, args := range [][]string{{"frobnicate"}, {"help", "frobnicate"}} {
		code, _, stderr := runCmd(t, args...)
		if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "\n  history ") {
			t.Fatalf("%v: code %d stderr %q", args, code, stderr)
		}
	}

	code, stdout, stderr := runCmd(t, "check", "-nope")
	if code != 2 || stdout != "" ||
		!strings.HasPrefix(stderr, "moonchat check: flag provided but not defined: -nope\nusage: moonchat check [-config FILE]\n") ||
		strings.Count(stderr, "-nope") != 1 {
		t.Fatalf("bad flag: code %d stdout %q stderr %q (want the error once, then the usage)", code, stdout, stderr)
	}
	code, _, stderr = runCmd(t, "history", "-limit", "x")
	if code != 2 || strings.Count(stderr, `invalid value "x" for flag -limit`) != 1 {
		t.Fatalf("bad value: code %d stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "history", "-limit", "0")
	if code != 2 || !strings.HasPrefix(stderr, "moonchat history: -limit 0: must be at least 1\nusage: moonchat history") {
		t.Fatalf("-limit 0: code %d stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "check", "extra")
	if code != 2 || !strings.HasPrefix(stderr, `moonchat check: unexpected argument "extra"`) {
		t.Fatalf("stray argument: code %d stderr %q", code, stderr)
	}

	code, stdout, stderr = runCmd(t, "serve", "-h")
	if code != 0 || stderr != "" || !strings.Contains(stdout, "-config") || strings.Contains(stdout, "ready-file") {
		t.Fatalf("serve -h: code %d stdout %q stderr %q (hidden flags must stay hidden)", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, "help", "history")
	if code != 0 || !strings.HasPrefix(stdout, "usage: moonchat history") ||
		!strings.Contains(stdout, "(default 100)") || strings.Contains(stdout, `"100"`) {
		t.Fatalf("help history: code %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, "echo", "-h")
	if code != 0 || !strings.Contains(stdout, `(default "127.0.0.1:9001")`) || !strings.Contains(stdout, "(default 67108864)") {
		t.Fatalf("echo -h: code %d\n%s", code, stdout)
	}
}
