package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// TestHistoryDirectLive (issue 14): a direct message sent over the wire
// between two accounts is read back by `moonchat history -direct` through
// the running server's local socket, by owned name and by account id, and
// by nobody through plain `moonchat history` (the HTTP API).
func TestHistoryDirectLive(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{"scripting": "[auth]\njwt_secret = \"" + testSecret + "\"\n"})
	srv := startInProcess(t, cfg)
	token := func(sub, name string) url.Values {
		tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": sub, "name": name, "exp": time.Now().Add(time.Hour).Unix()})
		return url.Values{"token": {tok}}
	}
	alice := dial(t, srv.addr, "lobby", "alice", token("u-alice", "alice"))
	bob := dial(t, srv.addr, "side", "bob", token("u-bob", "bob"))
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	bob.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	b, _ := json.Marshal(map[string]string{"type": "direct", "to": "bob", "text": "psst, the plan"})
	if err := alice.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	bob.waitFor("the direct message", func(e event) bool { return e.Type == "direct" && e.Text == "psst, the plan" })
	alice.send("public words")
	alice.waitFor("her room message", func(e event) bool { return e.Type == "message" && e.Text == "public words" })

	code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-direct", "alice")
	if code != 0 || !strings.HasPrefix(stdout, "u-bob bob 1 ") || strings.Count(stdout, "\n") != 1 || !strings.Contains(stderr, "local socket") {
		t.Errorf("-direct alice: code %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "history", "-config", cfg, "-direct", "u-bob", "-with", "alice", "-ids")
	if code != 0 || !strings.HasSuffix(stdout, " @dm:u-alice:u-bob #1 alice [u-alice]: psst, the plan\n") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("-direct u-bob -with alice: code %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "history", "-config", cfg, "-server", srv.addr)
	if code != 0 || strings.Contains(stdout, "psst") || !strings.Contains(stdout, "public words") {
		t.Errorf("plain history: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}
