package main

import (
	"net/http"
	"net/url"
	"testing"
)

// countingConnect is a connect script with a side effect: it counts its
// calls in chat.kv (as an invitation-code script would use codes up) and
// names a ?probe connection after the count so far.
const countingConnect = `
chat.on("connect", function(req)
  local n = (tonumber(chat.kv.get("calls")) or 0) + 1
  chat.kv.set("calls", tostring(n))
  if req.query.probe then
    return {id = "probe", name = "calls" .. n}
  end
end)
`

// TestCrossOriginSkipsConnectScript: a cross-site handshake is refused
// with 403 before the connect script runs, whatever its token (a bad one
// gets 403, not 401), with expose_credentials on; a same-origin handshake
// then finds the script ran once, for itself.
func TestCrossOriginSkipsConnectScript(t *testing.T) {
	srv, _, _ := authServerScripts(t, "guests = true\nexpose_credentials = true\n", map[string]string{"connect.lua": countingConnect})
	evil := http.Header{"Origin": {"https://evil.example"}, "Cookie": {"session=s3cret"}}
	for _, q := range []url.Values{{"name": {"x"}}, {"name": {"x"}, "token": {"not-a-token"}}} {
		if conn, status, body := dialWith(t, srv.addr, "lobby", q, evil); conn != nil || status != http.StatusForbidden || body != "origin not allowed\n" {
			t.Fatalf("cross-site handshake %v: %d %q, want 403 origin not allowed", q, status, body)
		}
	}
	conn, status, body := dialWith(t, srv.addr, "lobby", url.Values{"name": {"x"}, "probe": {"1"}}, http.Header{"Origin": {"http://" + srv.addr}})
	if conn == nil {
		t.Fatalf("same-origin probe: %d %q", status, body)
	}
	c := &client{t: t, conn: conn, name: "calls1"}
	c.waitFor("welcome as calls1 (the script's first call)", func(e event) bool { return e.Type == "welcome" && e.User == "calls1" })
}
