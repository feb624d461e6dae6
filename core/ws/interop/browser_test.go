package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moonchat/moonchat/core/ws"
)

const chromiumPath = "/usr/bin/chromium"

// browserPage opens a WebSocket to the page's own origin, sends a text, a
// binary and a 70,000-byte text message (64-bit length), checks the echoes in
// JS and closes with 4000 "bye"; window.result collects what the browser saw.
// A second WebSocket (id browser2) waits for the server to close it;
// window.result2 records the close event.
const browserPage = `<!doctype html><meta charset="utf-8"><title>ws interop</title>
<script>
window.result = {events: []};
const big = "ü✓".repeat(17500); // 70,000 bytes of UTF-8
const ws = new WebSocket("ws://" + location.host + "/ws?id=browser", ["chat.v9", "chat.v1"]);
ws.binaryType = "arraybuffer";
const r = window.result;
const expect = ["héllo wörld ✓", new Uint8Array([0, 1, 2, 127, 128, 255]), big];
let got = 0;
ws.onopen = () => {
  r.protocol = ws.protocol;
  r.events.push("open");
  ws.send(expect[0]);
  ws.send(expect[1]);
  ws.send(expect[2]);
};
ws.onmessage = (e) => {
  const want = expect[got++];
  if (typeof want === "string") {
    r.events.push(typeof e.data === "string" && e.data === want ? "text-ok" : "text-bad:" + String(e.data).slice(0, 40));
  } else {
    const a = e.data instanceof ArrayBuffer ? new Uint8Array(e.data) : null;
    r.events.push(a && a.length === want.length && a.every((v, i) => v === want[i]) ? "binary-ok" : "binary-bad");
  }
  if (got === expect.length) ws.close(4000, "bye");
};
ws.onerror = () => r.events.push("error");
ws.onclose = (e) => {
  r.close = {code: e.code, reason: e.reason, clean: e.wasClean};
  r.done = true;
};
// A second socket that the server closes.
window.result2 = {};
const ws2 = new WebSocket("ws://" + location.host + "/ws?id=browser2");
ws2.onopen = () => { window.result2.open = true; };
ws2.onclose = (e) => {
  window.result2.close = {code: e.code, reason: e.reason, clean: e.wasClean};
  window.result2.done = true;
};
</script>`

// TestBrowser drives headless Chromium against the engine.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium missing at %s: %v", chromiumPath, err)
		}
		t.Skipf("chromium missing at %s: %v", chromiumPath, err)
	}
	srv := newTestServer(t, ws.Config{Subprotocols: []string{"chat.v1"}}, map[string]http.HandlerFunc{
		"/page": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(browserPage))
		},
	})

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// The first Run starts the browser; it lives as long as bctx.
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+srv.addr+"/page")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	_, pollErr := chromedp.Run(bctx, chromedp.Poll[bool]("window.result && window.result.done === true",
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	raw, err := chromedp.Run(bctx, chromedp.Evaluate[string]("JSON.stringify(window.result)"))
	if pollErr != nil || err != nil {
		t.Fatalf("page never finished: poll %v, eval %v, result so far %s", pollErr, err, raw)
	}
	var res struct {
		Protocol string
		Events   []string
		Close    struct {
			Code   int
			Reason string
			Clean  bool
		}
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	if got, want := strings.Join(res.Events, ","), "open,text-ok,binary-ok,text-ok"; got != want {
		t.Errorf("browser events = %s, want %s", got, want)
	}
	if res.Protocol != "chat.v1" {
		t.Errorf("browser negotiated %q, want chat.v1", res.Protocol)
	}
	if res.Close.Code != 4000 || !res.Close.Clean {
		t.Errorf("browser close = %+v, want clean 4000", res.Close)
	}
	if ce := srv.rec.waitClose(t, "browser"); ce.Code != 4000 || ce.Reason != "bye" {
		t.Errorf("server OnClose = %d %q, want 4000 \"bye\"", ce.Code, ce.Reason)
	}

	// Server-initiated close of the second socket.
	if err := srv.rec.waitConn(t, "browser2").Close(4001, "server bye ✓"); err != nil {
		t.Fatalf("Conn.Close: %v", err)
	}
	_, pollErr = chromedp.Run(bctx, chromedp.Poll[bool]("window.result2.done === true",
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	raw, err = chromedp.Run(bctx, chromedp.Evaluate[string]("JSON.stringify(window.result2)"))
	if pollErr != nil || err != nil {
		t.Fatalf("second socket never closed: poll %v, eval %v, result so far %s", pollErr, err, raw)
	}
	var res2 struct {
		Open  bool
		Close struct {
			Code   int
			Reason string
			Clean  bool
		}
	}
	if err := json.Unmarshal([]byte(raw), &res2); err != nil {
		t.Fatalf("result2 %q: %v", raw, err)
	}
	if !res2.Open || res2.Close.Code != 4001 || res2.Close.Reason != "server bye ✓" || !res2.Close.Clean {
		t.Errorf("browser saw server close %+v, want clean 4001 %q", res2, "server bye ✓")
	}
	if ce := srv.rec.waitClose(t, "browser2"); ce.Code != 4001 {
		t.Errorf("server OnClose for browser2 = %d, want 4001", ce.Code)
	}
}
