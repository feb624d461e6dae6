package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitLong bounds every "should eventually happen" in these tests: long
// enough for a loaded 2-core machine, short enough to fail a hang.
const waitLong = 15 * time.Second

// testConfig writes a config.toml for a test server into dir: loopback,
// a free port, history in dir, no flood control (tests send fast), plus
// extra TOML lines appended to the named sections.
func testConfig(t testing.TB, dir string, extra map[string]string) string {
	t.Helper()
	sections := []string{"server", "chat", "store", "scripting"}
	base := map[string]string{
		// Clients that stop reading do not answer the close frame: a
		// short close_timeout keeps shutdowns in tests quick.
		"server":    "listen = \"127.0.0.1:0\"\nshutdown_timeout = \"10s\"\nclose_timeout = \"1s\"\n",
		"chat":      "flood_rate = 0\n",
		"store":     "path = \"moonchat.db\"\n",
		"scripting": "",
	}
	var b strings.Builder
	for _, s := range sections {
		fmt.Fprintf(&b, "[%s]\n%s%s\n", s, base[s], extra[s])
	}
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFile polls for path to exist with content and returns it trimmed.
func waitFile(t testing.TB, path string, done <-chan struct{}) string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-done:
			t.Fatalf("server exited before writing %s", path)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s not written within %v", path, waitLong)
	return ""
}

// inProcess is a server run by run() in this process.
type inProcess struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	log    *syncBuffer
}

// startInProcess runs "moonchat serve -config cfg" in a goroutine and waits
// until it listens.
func startInProcess(t *testing.T, cfg string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{cancel: cancel, done: make(chan struct{}), log: &syncBuffer{}}
	ready := filepath.Join(t.TempDir(), "ready")
	go func() {
		defer close(p.done)
		p.code = run(ctx, []string{"serve", "-config", cfg, "-ready-file", ready}, p.log, p.log)
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

// stop cancels the server and returns its exit code.
func (p *inProcess) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		t.Fatalf("server did not stop within %v", waitLong)
	}
	return p.code
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// moonchatBinary builds the binary once per test run.
func moonchatBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "moonchat-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "moonchat")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// child is the moonchat binary running as a child process.
type child struct {
	cmd  *exec.Cmd
	addr string
	log  *syncBuffer
	done chan struct{}
	err  error // from Wait, valid after done
}

// startChild starts "moonchat serve -config cfg" and waits until it listens.
func startChild(t testing.TB, cfg string) *child {
	t.Helper()
	bin := moonchatBinary(t)
	ready := filepath.Join(t.TempDir(), "ready")
	c := &child{log: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, "serve", "-config", cfg, "-ready-file", ready)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("child log:\n%s", c.log)
		}
	})
	c.addr = waitFile(t, ready, c.done)
	return c
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitLong):
		t.Fatalf("child did not exit within %v", waitLong)
	}
	return c.cmd.ProcessState.ExitCode()
}

// event is a moonchat.v1 server event (the union of the fields used here).
type event struct {
	Type     string    `json:"type"`
	ID       uint64    `json:"id"`
	Room     string    `json:"room"`
	User     string    `json:"user"`
	Text     string    `json:"text"`
	Reason   string    `json:"reason"`
	Code     string    `json:"code"`
	Users    []string  `json:"users"`
	Messages []event   `json:"messages"`
	TS       time.Time `json:"ts"`
}

// client is a moonchat.v1 WebSocket client.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	name string
}

// dial joins room as name (JSON protocol); query adds parameters.
func dial(t *testing.T, addr, room, name string, query url.Values) *client {
	t.Helper()
	if query == nil {
		query = url.Values{}
	}
	query.Set("name", name)
	u := url.URL{Scheme: "ws", Host: addr, Path: "/chat/" + room, RawQuery: query.Encode()}
	d := websocket.Dialer{Subprotocols: []string{"moonchat.v1"}, HandshakeTimeout: waitLong}
	conn, resp, err := d.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", u.String(), err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, name: name}
}

func (c *client) send(text string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"type": "message", "text": text})
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitLong))
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("%s send: %v", c.name, err)
	}
}

// next reads the next event.
func (c *client) next() (event, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(waitLong))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		return event{}, err
	}
	var e event
	if err := json.Unmarshal(data, &e); err != nil {
		return event{}, fmt.Errorf("bad event %q: %v", data, err)
	}
	return e, nil
}

// waitFor reads events until match accepts one (bounded by count and time).
func (c *client) waitFor(what string, match func(event) bool) event {
	c.t.Helper()
	deadline := time.Now().Add(waitLong)
	for i := 0; i < 10000 && time.Now().Before(deadline); i++ {
		e, err := c.next()
		if err != nil {
			c.t.Fatalf("%s waiting for %s: %v", c.name, what, err)
		}
		if match(e) {
			return e
		}
	}
	c.t.Fatalf("%s: no %s within %v", c.name, what, waitLong)
	return event{}
}

// httpGet fetches url and returns status and body.
func httpGet(t testing.TB, u string) (int, string) {
	t.Helper()
	cl := &http.Client{Timeout: waitLong}
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
