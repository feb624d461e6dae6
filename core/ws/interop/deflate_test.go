package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// countingConn counts the bytes a client reads from and writes to the
// wire, so that a test can tell that messages really travelled compressed.
type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// wireCount is what went over one client's TCP connection.
type wireCount struct{ in, out atomic.Int64 }

func (w *wireCount) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, in: &w.in, out: &w.out}, nil
}

// deflateClients are the third-party clients that offer permessage-deflate:
// gorilla (its offer has both no_context_takeover parameters and it insists
// on them in the answer) and coder in both of its modes (with context
// takeover its offer has neither parameter, so it learns from our answer
// that it must not take its context over).
var deflateClients = []struct {
	name string
	dial func(t testing.TB, url string, wc *wireCount) (client, *http.Response, error)
}{
	{"gorilla", func(t testing.TB, url string, wc *wireCount) (client, *http.Response, error) {
		d := websocket.Dialer{HandshakeTimeout: eventually, EnableCompression: true, NetDialContext: wc.dial}
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			return nil, resp, err
		}
		c.SetReadLimit(64 << 20)
		t.Cleanup(func() { _ = c.Close() })
		return &gorillaClient{c}, resp, nil
	}},
	{"coder-no-context-takeover", func(t testing.TB, url string, wc *wireCount) (client, *http.Response, error) {
		return dialCoderDeflate(t, url, wc, coder.CompressionNoContextTakeover)
	}},
	{"coder-context-takeover", func(t testing.TB, url string, wc *wireCount) (client, *http.Response, error) {
		return dialCoderDeflate(t, url, wc, coder.CompressionContextTakeover)
	}},
}

func dialCoderDeflate(t testing.TB, url string, wc *wireCount, mode coder.CompressionMode) (client, *http.Response, error) {
	ctx := ctxT(t)
	hc := &http.Client{Transport: &http.Transport{DialContext: wc.dial}}
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{
		HTTPClient:           hc,
		CompressionMode:      mode,
		CompressionThreshold: 1, // compress what it sends, however small
	})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &coderClient{c, ctx}, resp, nil
}

// chatLine is a chat-like message of about n bytes.
func chatLine(n int) []byte {
	words := strings.Fields("hello there anyone around for the deploy tonight? yes the build passed and the review is merged thanks")
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = append(b, words[i%len(words)]...)
		b = append(b, ' ')
	}
	return b[:n]
}

// TestDeflateInterop: third-party clients negotiate permessage-deflate with
// the engine and exchange compressed messages both ways: small and
// chat-sized ones, one of 1 MiB that gorilla sends as many frames (RSV1 on
// the first only), a Prepared broadcast; the bytes on the wire show that
// both directions were compressed.
func TestDeflateInterop(t *testing.T) {
	srv := newTestServer(t, ws.Config{Compression: true, CompressionThreshold: 1}, nil)
	for _, cl := range deflateClients {
		t.Run(cl.name, func(t *testing.T) {
			var wc wireCount
			c, resp, err := cl.dial(t, srv.wsURL("z-"+cl.name), &wc)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
				t.Fatalf("Sec-WebSocket-Extensions %q", ext)
			}
			sc := srv.rec.waitConn(t, "z-"+cl.name)
			if !sc.Compression() {
				t.Fatal("server side: Compression() false")
			}

			big := bytes.Repeat(chatLine(200), 1<<20/200) // ~1 MiB of chat text
			in0, out0 := wc.in.Load(), wc.out.Load()
			for _, m := range []struct {
				op   ws.Opcode
				data []byte
			}{
				{ws.OpText, []byte("hi")},
				{ws.OpText, chatLine(180)},
				{ws.OpBinary, chatLine(3000)},
				{ws.OpText, big},
				{ws.OpText, []byte("héllo wörld, héllo wörld, héllo wörld")},
			} {
				if err := c.write(m.op, m.data); err != nil {
					t.Fatalf("write: %v", err)
				}
				op, got, err := c.read()
				if err != nil {
					t.Fatalf("read echo: %v", err)
				}
				if op != m.op || !bytes.Equal(got, m.data) {
					t.Fatalf("echo %v %s, want %v %s", op, describe(got), m.op, describe(m.data))
				}
			}
			in, out := wc.in.Load()-in0, wc.out.Load()-out0
			if in > int64(len(big))/10 || out > int64(len(big))/10 {
				t.Fatalf("%d bytes read and %d written for a 1 MiB echo: not compressed", in, out)
			}

			// A broadcast: the Prepared's compressed frames.
			msgs := [][]byte{chatLine(150), chatLine(400), []byte("x")}
			if err := sc.WritePrepared(ws.NewPrepared(ws.OpText, msgs...)); err != nil {
				t.Fatal(err)
			}
			for _, want := range msgs {
				op, got, err := c.read()
				if err != nil || op != ws.OpText || !bytes.Equal(got, want) {
					t.Fatalf("broadcast: %v %s %v, want %s", op, describe(got), err, describe(want))
				}
			}
			if err := c.sendClose(ws.StatusNormalClosure, ""); err != nil {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

// TestDeflateZipBombInterop: a client's compressed message that inflates
// past the server's MaxMessageBytes (8 MiB of zeros, a few KiB on the wire,
// bound 1 MiB) closes the connection with 1009, which the client sees.
func TestDeflateZipBombInterop(t *testing.T) {
	srv := newTestServer(t, ws.Config{Compression: true, MaxMessageBytes: 1 << 20}, nil)
	for _, cl := range deflateClients {
		t.Run(cl.name, func(t *testing.T) {
			var wc wireCount
			c, _, err := cl.dial(t, srv.wsURL("bomb-"+cl.name), &wc)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			out0 := wc.out.Load()
			// The write may fail once the server has closed.
			_ = c.write(ws.OpBinary, make([]byte, 8<<20))
			code, _ := readUntilClose(t, c)
			if code != int(ws.StatusMessageTooBig) {
				t.Fatalf("client saw close %d, want 1009", code)
			}
			if ce := srv.rec.waitClose(t, "bomb-"+cl.name); ce.Code != ws.StatusMessageTooBig {
				t.Fatalf("server OnClose %v, want 1009", ce)
			}
			if sent := wc.out.Load() - out0; sent > 1<<20 {
				t.Fatalf("the bomb took %d bytes on the wire: not compressed", sent)
			}
		})
	}
}

// browserDeflatePage offers permessage-deflate as every browser does,
// sends chat-sized and large text (Chromium compresses what it sends), and
// records the echoes and a broadcast the server sends after "ready".
const browserDeflatePage = `<!doctype html><meta charset="utf-8"><title>deflate interop</title>
<script>
window.result = {events: []};
const r = window.result;
const line = "hello there, anyone around for the deploy tonight? ✓ ";
const expect = [line, line.repeat(4), line.repeat(2000)];
const ws = new WebSocket("ws://" + location.host + "/ws?id=zbrowser");
let got = 0;
ws.onopen = () => { r.extensions = ws.extensions; for (const m of expect) ws.send(m); };
ws.onmessage = (e) => {
  if (got < expect.length) {
    r.events.push(e.data === expect[got] ? "echo-ok" : "echo-bad:" + String(e.data).slice(0, 40));
    if (++got === expect.length) ws.send("ready");
    return;
  }
  if (e.data === "ready") return; // its echo
  r.events.push("broadcast:" + e.data.length);
  if (r.events.length === expect.length + 2) ws.close(1000);
};
ws.onclose = (e) => { r.close = e.code; r.done = true; };
</script>`

// TestBrowserDeflate: headless Chromium negotiates permessage-deflate with
// the engine, its compressed messages are inflated and echoed compressed,
// and a compressed broadcast (Prepared) reaches it.
func TestBrowserDeflate(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium missing at %s: %v", chromiumPath, err)
		}
		t.Skipf("chromium missing at %s: %v", chromiumPath, err)
	}
	srv := newTestServer(t, ws.Config{Compression: true, CompressionThreshold: 1}, map[string]http.HandlerFunc{
		"/page": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(browserDeflatePage))
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
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
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+srv.addr+"/page")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	sc := srv.rec.waitConn(t, "zbrowser")
	if !sc.Compression() {
		t.Fatal("Chromium's connection did not negotiate permessage-deflate")
	}
	// Wait for "ready" (all echoes done), then broadcast.
	_, err := chromedp.Run(bctx, chromedp.Poll[bool]("window.result.events.length === 3",
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatalf("echoes never arrived: %v", err)
	}
	p := ws.NewPrepared(ws.OpText, chatLine(300), chatLine(5000))
	if err := sc.WritePrepared(p); err != nil {
		t.Fatal(err)
	}
	_, pollErr := chromedp.Run(bctx, chromedp.Poll[bool]("window.result.done === true",
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	raw, err := chromedp.Run(bctx, chromedp.Evaluate[string]("JSON.stringify(window.result)"))
	if pollErr != nil || err != nil {
		t.Fatalf("page never finished: poll %v, eval %v, result so far %s", pollErr, err, raw)
	}
	var res struct {
		Extensions string
		Events     []string
		Close      int
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	if !strings.HasPrefix(res.Extensions, "permessage-deflate") {
		t.Errorf("ws.extensions = %q", res.Extensions)
	}
	if got, want := strings.Join(res.Events, ","), "echo-ok,echo-ok,echo-ok,broadcast:300,broadcast:5000"; got != want {
		t.Errorf("browser events = %s, want %s", got, want)
	}
	if res.Close != 1000 {
		t.Errorf("browser close %d, want 1000", res.Close)
	}
}
