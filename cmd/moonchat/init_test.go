package main

import (
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/defaults"
)

// builtinScripts reads the built-in scripts from their source directory,
// defaults/scripts, not through package defaults: the embedded copy must
// equal it whatever a user does with their own scripts.
func builtinScripts(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "defaults", "scripts", "*.lua"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("defaults/scripts: %v %v", paths, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// embeddedScripts reads defaults.Scripts().
func embeddedScripts(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := fs.Glob(defaults.Scripts(), "*.lua")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := fs.ReadFile(defaults.Scripts(), n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

// dirScripts reads the *.lua files of dir.
func dirScripts(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// TestInit (issue 10.1-2): `moonchat init -dir D` writes D/config.toml,
// which as written loads exactly the built-in defaults, and D/scripts with
// copies of the built-in scripts; `moonchat check` then checks those.
func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site") // created by init
	code, stdout, stderr := runCmd(t, "init", "-dir", dir)
	if code != 0 {
		t.Fatalf("init: code %d stderr %q", code, stderr)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	scriptsDir := filepath.Join(dir, "scripts")
	if !strings.Contains(stdout, "wrote "+cfgPath) || !strings.Contains(stdout, "wrote "+scriptsDir+"/: 11 scripts") {
		t.Errorf("init output:\n%s", stdout)
	}

	written, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(written, defaults.StarterConfig()) {
		t.Error("config.toml is not the starter config")
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatalf("load the written config.toml: %v", err)
	}
	want, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	want.Source = cfgPath
	want.Store.Path = filepath.Join(dir, want.Store.Path)
	want.Scripting.Dir = scriptsDir
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("the written config.toml changes settings:\n got %+v\nwant %+v", cfg, want)
	}

	if got, want := dirScripts(t, scriptsDir), builtinScripts(t); !reflect.DeepEqual(got, want) {
		t.Errorf("scripts/ holds %v, want copies of the built-in %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	// The examples (accounts.lua) are copied one level down, where they
	// do not run (check below still counts 10 scripts).
	examples := map[string][]byte{}
	names, err := fs.Glob(defaults.Examples(), "*.lua")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if examples[name], err = fs.ReadFile(defaults.Examples(), name); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := examples["accounts.lua"]; !ok {
		t.Errorf("built-in examples %v lack accounts.lua", names)
	}
	if got := dirScripts(t, filepath.Join(scriptsDir, "examples")); !reflect.DeepEqual(got, examples) {
		t.Errorf("scripts/examples/ holds %v, want copies of the built-in examples %v", slices.Sorted(maps.Keys(got)), names)
	}
	if !strings.Contains(stdout, "wrote "+filepath.Join(scriptsDir, "examples")+"/: ") || !strings.Contains(stdout, "accounts.lua") {
		t.Errorf("init output does not name the examples:\n%s", stdout)
	}

	code, stdout, stderr = runCmd(t, "check", "-config", cfgPath)
	if code != 0 || stdout != "config: "+cfgPath+"\nscripts: directory "+scriptsDir+
		" (11: delete.lua, help.lua, ignore.lua, me.lua, moderation.lua, msg.lua, nick.lua, quit.lua, welcome.lua, who.lua, wordfilter.lua)\nok\n" {
		t.Errorf("check after init: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}

// TestInitNeverOverwrites: with config.toml or scripts/ in the way, init
// writes nothing at all and says what is in the way.
func TestInitNeverOverwrites(t *testing.T) {
	for _, existing := range []string{"config.toml", "scripts"} {
		t.Run(existing, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			if existing == "scripts" {
				if err := os.Mkdir("scripts", 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile("config.toml", []byte("[chat]\ndefault_room = \"mine\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCmd(t, "init")
			if code != 1 || stdout != "" || !strings.Contains(stderr, existing+" already exist") || !strings.Contains(stderr, "wrote nothing") {
				t.Fatalf("code %d stdout %q stderr %q", code, stdout, stderr)
			}
			entries, err := os.ReadDir(".")
			if err != nil || len(entries) != 1 || entries[0].Name() != existing {
				t.Fatalf("directory holds %v (%v), want only the existing %s", entries, err, existing)
			}
			if existing == "config.toml" {
				if b, _ := os.ReadFile("config.toml"); string(b) != "[chat]\ndefault_room = \"mine\"\n" {
					t.Fatalf("config.toml changed: %q", b)
				}
			} else if e, _ := os.ReadDir("scripts"); len(e) != 0 {
				t.Fatalf("scripts/ changed: %v", e)
			}
		})
	}
}

// TestPartialUserConfig (issue 10.1): a ./config.toml with one key keeps
// every other built-in default.
func TestPartialUserConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("config.toml", []byte("[server]\nlisten = \"127.0.0.1:8091\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	want, err := defaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	want.Source = "config.toml"
	want.Server.Listen = "127.0.0.1:8091"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	code, stdout, stderr := runCmd(t, "check")
	if code != 0 || !strings.HasPrefix(stdout, "config: config.toml\n") {
		t.Fatalf("check: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}

// serveHere runs "moonchat serve" without -config in dir (as `go run
// ./cmd/moonchat` in a checkout does) with extra flags, and waits until it
// listens.
func serveHere(t *testing.T, dir string) *inProcess {
	t.Helper()
	t.Chdir(dir)
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{cancel: cancel, done: make(chan struct{}), log: &syncBuffer{}}
	ready := filepath.Join(t.TempDir(), "ready")
	go func() {
		defer close(p.done)
		p.code = run(ctx, []string{"serve", "-ready-file", ready}, p.log, p.log)
	}()
	p.addr = waitFile(t, ready, p.done)
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", p.log)
		}
	})
	return p
}

// TestServePartialUserConfig (issue 10.1): the server starts from a
// ./config.toml holding one key, with every other setting at its default
// (the built-in scripts answer /who; history goes to data/moonchat.db).
func TestServePartialUserConfig(t *testing.T) {
	dir := t.TempDir()
	// Port 0 rather than a fixed one, so that the test cannot collide.
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte("[server]\nlisten = \"127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := serveHere(t, dir)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.send("/who")
	alice.waitFor("/who answer", func(e event) bool { return e.Type == "system" && strings.Contains(e.Text, "alice") })
	alice.send("hello")
	alice.waitFor("own message", func(e event) bool { return e.Type == "message" && e.Text == "hello" })
	alice.conn.Close()
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, srv.log)
	}
	log := srv.log.String()
	for _, want := range []string{"source=config.toml", "built-in default scripts", "path=data/moonchat.db"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "moonchat.db")); err != nil {
		t.Errorf("history not at the default path: %v", err)
	}
}

// TestUserScriptsDir (issue 10.2): after `moonchat init`, ./scripts is the
// user's: an extra script runs next to the copies, deleting every script
// runs none (and the log says so), and nothing of it changes the built-in
// scripts.
func TestUserScriptsDir(t *testing.T) {
	builtin := builtinScripts(t) // before leaving the package directory
	dir := t.TempDir()
	t.Chdir(dir)
	if code, _, stderr := runCmd(t, "init"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	// The server must listen on a free port: the one key this test sets.
	if err := os.WriteFile("config.toml", []byte("[server]\nlisten = \"127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	extra := "chat.command(\"extra\", function(user) return \"extra here\" end, \"/extra\")\n"
	if err := os.WriteFile(filepath.Join("scripts", "extra.lua"), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	// A changed copy runs as changed.
	if err := os.WriteFile(filepath.Join("scripts", "who.lua"), []byte("chat.command(\"who\", function(user) return \"my who\" end, \"/who\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	srv := serveHere(t, dir)
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	for cmd, answer := range map[string]string{"/extra": "extra here", "/who": "my who"} {
		alice.send(cmd)
		alice.waitFor(cmd+" answer", func(e event) bool { return e.Type == "system" && e.Text == answer })
	}
	alice.conn.Close() // gone before the shutdown: no close handshake to wait for
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Every script deleted: none runs, not even the built-in ones, so no
	// command exists (not even /help).
	paths, _ := filepath.Glob(filepath.Join("scripts", "*.lua"))
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	srv = serveHere(t, dir)
	bob := dial(t, srv.addr, "lobby", "bob", nil)
	bob.send("/who")
	e := bob.waitFor("/who refused", func(e event) bool { return strings.Contains(e.Text, "unknown command /who") })
	if strings.Contains(e.Text, "/help") {
		t.Errorf("%q: a /help command exists", e.Text)
	}
	bob.conn.Close()
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if log := srv.log.String(); !strings.Contains(log, "no scripts run") {
		t.Errorf("the log does not say that no scripts run:\n%s", log)
	}

	if got, want := embeddedScripts(t), builtin; !reflect.DeepEqual(got, want) {
		t.Errorf("built-in scripts changed: %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}
