package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// runBin runs the built moonchat binary with stdin (a pipe, so not a
// terminal) and returns its exit code, stdout and stderr.
func runBin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runBinEnv(t, nil, stdin, args...)
}

// runBinEnv is runBin with env added to the environment.
func runBinEnv(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(moonchatBinary(t), args...)
	cmd.Env = append(append(os.Environ(), "MOONCHAT_TOKEN="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(waitLong):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("moonchat %v did not exit within %v\nstdout:\n%s\nstderr:\n%s", args, waitLong, stdout.String(), stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// lineTime matches line mode's time stamp.
const lineTime = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`

// TestClientPipe (issue 17): `moonchat client` with stdin and stdout not
// terminals is line mode: each input line is sent (a /me as an action),
// every chat line printed as "TIME ROOM NICK: TEXT" without colours or
// control characters (another user's multi-line text stays on its line),
// and it exits 0 at the end of the input once every send is
// acknowledged — the messages are stored and another member saw them.
func TestClientPipe(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, testConfig(t, dir, nil))
	obs := dial(t, c.addr, "lobby", "obs", nil)
	obs.send("two\nlines")
	obs.waitFor("own message", func(e event) bool { return e.Type == "message" && e.User == "obs" })

	code, stdout, stderr := runBin(t, "hi all\n\n/me waves\n/msg obs psst\nlast words\n", "client", "ws://"+c.addr+"/chat/lobby?name=bot")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		`(?m)^` + lineTime + ` lobby obs: two ⏎ lines$`,
		`(?m)^` + lineTime + ` lobby \* bot joined$`,
		`(?m)^` + lineTime + ` lobby bot: hi all$`,
		`(?m)^` + lineTime + ` lobby \* bot waves$`,
		`(?m)^` + lineTime + ` lobby bot: last words$`,
		`(?m)^` + lineTime + ` @obs bot: psst$`, // a direct message: @PEER
	} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("stdout has no line matching %s:\n%s", want, stdout)
		}
	}
	if strings.ContainsAny(stdout, "\x1b\r") || stderr != "" {
		t.Errorf("stdout %q\nstderr %q: want no escapes and nothing on stderr", stdout, stderr)
	}
	// Acknowledged means stored and delivered: the other member has
	// every one, in order.
	var got []string
	direct := ""
	for len(got) < 3 || direct == "" {
		e := obs.waitFor("bot's messages", func(e event) bool {
			return e.Type == "message" && e.User == "bot" || e.Type == "direct"
		})
		if e.Type == "direct" {
			direct = e.Text
			continue
		}
		got = append(got, e.Text)
	}
	if strings.Join(got, "|") != "hi all|waves|last words" || direct != "psst" {
		t.Fatalf("obs saw %q and the direct message %q", got, direct)
	}

	// No input: the replay is printed, then it exits.
	code, stdout, stderr = runBin(t, "", "client", "-name", "reader", "ws://"+c.addr+"/chat/lobby")
	if code != 0 || !regexp.MustCompile(`(?m)^`+lineTime+` lobby bot: last words$`).MatchString(stdout) {
		t.Fatalf("no input: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestClientPipeRefused: a send the server refuses makes line mode say
// why on stderr and exit 1 after the rest is sent; a refused handshake
// exits 1 with the server's reason.
func TestClientPipeRefused(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, testConfig(t, dir, map[string]string{"chat": "max_text_bytes = 16\n"}))
	obs := dial(t, c.addr, "lobby", "obs", nil)

	code, stdout, stderr := runBin(t, "this text is longer than sixteen bytes\n/nosuchcommand\nshort one\n",
		"client", "-name", "bot", "ws://"+c.addr+"/chat/lobby")
	if code != 1 ||
		!strings.Contains(stderr, "not sent: this text is longer than sixteen bytes: message too long") ||
		!strings.Contains(stderr, "not sent: /nosuchcommand: unknown command /nosuchcommand") ||
		!strings.Contains(stderr, "2 of 3 sends refused") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`(?m)^` + lineTime + ` lobby bot: short one$`).MatchString(stdout) {
		t.Fatalf("stdout:\n%s", stdout)
	}
	if e := obs.waitFor("bot's message", func(e event) bool { return e.Type == "message" }); e.Text != "short one" {
		t.Fatalf("obs saw %+v", e)
	}

	code, _, stderr = runBin(t, "hi\n", "client", "ws://"+c.addr+"/chat/bad%20room")
	if code != 1 || !strings.Contains(stderr, "invalid room name") {
		t.Fatalf("bad room: exit %d stderr %q", code, stderr)
	}
	code, _, stderr = runBin(t, "hi\n", "client", "ws://"+c.addr+"/elsewhere")
	if code != 1 || !strings.Contains(stderr, "refused (HTTP 404)") {
		t.Fatalf("wrong path: exit %d stderr %q", code, stderr)
	}
}

// TestClientToken: -token, or MOONCHAT_TOKEN, signs the client in (sent
// as an Authorization header): the account's name is the token's, not
// -name; without one a server refusing guests answers 401, and line mode
// exits 1 with that reason; `quit` (the server closes with 1000) ends
// it with 0.
func TestClientToken(t *testing.T) {
	srv, _, _ := authServer(t, "guests = false\n")
	token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), goodClaims(nil))
	u := "ws://" + srv.addr + "/chat/lobby"

	code, stdout, stderr := runBinEnv(t, []string{"MOONCHAT_TOKEN=" + token}, "signed in\n", "client", "-name", "mallory", u)
	if code != 0 || !regexp.MustCompile(`(?m)^`+lineTime+` lobby alice: signed in$`).MatchString(stdout) {
		t.Fatalf("MOONCHAT_TOKEN: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runBin(t, "again\n", "client", "-token", token, u)
	if code != 0 || !regexp.MustCompile(`(?m)^`+lineTime+` lobby alice: again$`).MatchString(stdout) {
		t.Fatalf("-token: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, _, stderr = runBin(t, "hi\n", "client", "-name", "bob", u)
	if code != 1 || !strings.Contains(stderr, "refused (HTTP 401)") {
		t.Fatalf("no token: exit %d stderr %q", code, stderr)
	}
	code, stdout, stderr = runBin(t, "bye for now\nquit\n", "client", "-token", token, u)
	if code != 0 || !strings.Contains(stderr, "goodbye") || !strings.Contains(stdout, "alice: bye for now") {
		t.Fatalf("quit: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestSay (issue 17): `moonchat say` posts through the admin API at the
// config's address with its [admin] token: the room gets the message
// under -as, stdout has "ROOM ID TIME"; a refusal exits 1 with the
// server's reason, and so does a config without an admin token.
func TestSay(t *testing.T) {
	dir := t.TempDir()
	const token = "say-token-0123456789abcdefghijklmnop"
	// The admin section follows [scripting] in the test config.
	cfg := testConfig(t, dir, map[string]string{"scripting": "[admin]\ntoken = \"" + token + "\"\n"})
	c := startChild(t, cfg)
	// The config names port 0: the running server's address is given.
	obs := dial(t, c.addr, "ops", "obs", nil)

	code, stdout, stderr := runBin(t, "", "say", "-config", cfg, "-server", c.addr, "-room", "ops", "-as", "deploybot", "release", "v1.2", "is", "out")
	if code != 0 || !regexp.MustCompile(`^ops [1-9][0-9]* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n$`).MatchString(stdout) || stderr != "" {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	e := obs.waitFor("the posted message", func(e event) bool { return e.Type == "message" })
	if e.User != "deploybot" || e.Text != "release v1.2 is out" {
		t.Fatalf("obs saw %+v", e)
	}

	code, _, stderr = runBin(t, "", "say", "-config", cfg, "-server", c.addr, "-room", "ops", "-as", "two words", "x")
	if code != 1 || !strings.Contains(stderr, "refused: 400 Bad Request: ") || !strings.Contains(stderr, "invalid name") {
		t.Fatalf("bad -as: exit %d stderr %q", code, stderr)
	}
	code, _, stderr = runBin(t, "", "say", "-config", cfg, "-server", c.addr, "-room", "ops", "bell \x07 rings")
	if code != 1 || !strings.Contains(stderr, "control character") {
		t.Fatalf("control character: exit %d stderr %q", code, stderr)
	}
	code, _, stderr = runBin(t, "", "say", "-config", cfg, "-server", c.addr, "ops")
	if code != 2 || !strings.Contains(stderr, "-room is required") {
		t.Fatalf("no -room: exit %d stderr %q", code, stderr)
	}
	noAdmin := testConfig(t, t.TempDir(), nil)
	code, _, stderr = runBin(t, "", "say", "-config", noAdmin, "-server", c.addr, "-room", "ops", "x")
	if code != 1 || !strings.Contains(stderr, "[admin] token is empty") {
		t.Fatalf("no admin token: exit %d stderr %q", code, stderr)
	}
}
