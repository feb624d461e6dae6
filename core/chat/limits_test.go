package chat

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestSlowConsumerEvicted(t *testing.T) {
	t.Run("room goroutine writes", func(t *testing.T) {
		testSlowConsumerEvicted(t, Config{MaxTextBytes: 40000, WS: wsQueue(32 << 10), fanoutWorkers: -1})
	})
	// The sweepers find the slow consumer; the room removes it.
	t.Run("sweepers", func(t *testing.T) {
		testSlowConsumerEvicted(t, Config{MaxTextBytes: 40000, WS: wsQueue(32 << 10), fanoutWorkers: 2, fanoutMin: 1})
	})
}

func testSlowConsumerEvicted(t *testing.T, cfg Config) {
	ts := startServer(t, cfg, nil, nil)
	// The slow client never reads and has a tiny receive buffer, so the
	// server's queue for it fills up.
	d := websocket.Dialer{
		HandshakeTimeout: waitTime,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_ = c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		},
	}
	slow, _, err := d.Dial(ts.ws+"/chat/r?name=slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := ts.dial(t, "/chat/r?name=fast", "")
	eventually(t, "both joined", func() bool { return len(ts.srv.Users("r")) == 2 })
	fast.skipTo(func(s string) bool { return s == "* fast joined" })

	text := strings.Repeat("x", 30000)
	// ~12 MB: beyond the slow client's buffers, the server's socket send
	// buffer (Linux autotunes it up to 4 MB) and its 32 KB queue.
	const n = 400
	go func() {
		for i := range n {
			if fast.c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d %s", i, text)) != nil {
				return
			}
		}
	}()
	sawLeft := false
	for i := range n {
		line := fast.skipTo(func(s string) bool {
			sawLeft = sawLeft || s == "* slow left"
			return strings.HasPrefix(s, "fast: ")
		})
		if want := fmt.Sprintf("fast: %d ", i); !strings.HasPrefix(line, want) {
			t.Fatalf("message %d: got %.20q", i, line)
		}
	}
	eventually(t, "slow consumer gone", func() bool { return len(ts.srv.Users("r")) == 1 })
	// The others are told.
	if !sawLeft {
		fast.skipTo(func(s string) bool { return s == "* slow left" })
	}
	_, body, _ := ts.get(t, "/metrics")
	if !strings.Contains(body, "moonchat_slow_consumers_total 1\n") {
		t.Fatalf("slow consumer not counted:\n%s", body)
	}
}

// wsQueue is an engine config with a small write queue.
func wsQueue(n int) (c wsConfig) {
	c.MaxQueueBytes = n
	c.WriteTimeout = waitTime
	return c
}

func TestMaxConnectionsAndRooms(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 2, MaxRooms: 1}, nil, nil)
	a := ts.dial(t, "/chat/one?name=a", "")
	a.expect("* a joined")
	r := ts.dial(t, "/chat/two?name=b", "")
	r.expect("* too many rooms")
	r.expectClose(1013, "too many rooms")
	eventually(t, "refused connection released", func() bool { return ts.srv.conns.Load() == 1 })
	b := ts.dial(t, "/chat/one?name=b", "")
	b.expect("* b joined")
	f := ts.dial(t, "/chat/one?name=c", "")
	f.expect("* server full")
	f.expectClose(1013, "server full")
	_ = b.c.Close()
	a.expect("* b joined", "* b left")
	eventually(t, "slot free", func() bool { return ts.srv.conns.Load() == 1 })
	c := ts.dial(t, "/chat/one?name=c", "")
	c.expect("* c joined")
}

func TestHTTPEndpoints(t *testing.T) {
	ts := startServer(t, Config{}, nil, nil)
	if status, body, _ := ts.get(t, "/healthz"); status != 200 || body != "ok" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	status, body, hdr := ts.get(t, "/")
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "<html") {
		t.Fatalf("/: %d %s %.80q", status, hdr.Get("Content-Type"), body)
	}
	for _, f := range []string{"/app.js", "/style.css"} {
		if status, _, _ := ts.get(t, f); status != 200 {
			t.Errorf("%s: %d", f, status)
		}
	}
	if status, _, _ := ts.get(t, "/nope"); status != 404 {
		t.Errorf("/nope: %d", status)
	}
	status, body, hdr = ts.get(t, "/metrics")
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", status, hdr.Get("Content-Type"))
	}
	for _, series := range []string{
		"moonchat_connections ", "moonchat_rooms ", "moonchat_messages_in_total ", "moonchat_messages_out_total ",
		"moonchat_messages_dropped_total{", "moonchat_slow_consumers_total ", "moonchat_hook_duration_seconds_bucket{",
		"moonchat_history_append_duration_seconds_sum ", "moonchat_history_append_duration_seconds_count ",
	} {
		if !strings.Contains(body, "\n"+series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	hist := newMemHistory()
	srv, err := New(testLimits(Config{Logger: testLogger(t)}), &testHooks{}, hist)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, ws: "ws://" + ln.Addr().String(), http: "http://" + ln.Addr().String()}
	hs := &httpServer{}
	hs.start(ln, srv)

	var clients []*client
	for i := range 3 {
		c := ts.dial(t, fmt.Sprintf("/chat/r%d?name=u", i%2), []string{"", SubprotocolJSON}[i%2])
		clients = append(clients, c)
	}
	eventually(t, "joined", func() bool { return len(srv.Users("r0"))+len(srv.Users("r1")) == 3 })
	// Messages sent right before the shutdown are stored and delivered.
	clients[0].send("last words")
	clients[0].skipTo(func(s string) bool { return s == "u: last words" })

	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	for _, c := range clients {
		c.expectClose(1001, "server shutting down")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, resp, err := ts.tryDial("/chat/r0", ""); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("upgrade after shutdown: %v %v", err, resp)
	}
	hs.stop()
	for _, c := range clients {
		_ = c.c.Close()
	}
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if len(hist.all("r0")) != 1 {
		t.Fatalf("history: %v", hist.all("r0"))
	}
}

// The room pipeline holds at most MaxPending messages per member: while
// History.Append is stuck, a fast sender is paused instead of queueing
// without bound.
func TestBackpressurePausesSender(t *testing.T) {
	hist := newMemHistory()
	hist.gate = make(chan struct{})
	ts := startServer(t, Config{MaxPending: 8, MaxTextBytes: 4096}, nil, hist)
	c := ts.dial(t, "/chat/r?name=a", "")
	c.expect("* a joined")
	text := strings.Repeat("y", 4000)
	sent := make(chan int, 1)
	go func() {
		i := 0
		_ = c.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for ; i < 4000; i++ {
			if c.c.WriteMessage(websocket.TextMessage, []byte(text)) != nil {
				break
			}
		}
		sent <- i
	}()
	// With reading paused, the client's writes stall once the socket
	// buffers are full; far fewer than 4000 (16 MB) reach the server.
	n := <-sent
	if n == 4000 {
		t.Fatalf("all 4000 x 4 KB writes went through while the room was stuck")
	}
	in := ts.srv.metrics.messagesIn.Load()
	if in > 200 {
		t.Fatalf("%d messages entered the room pipeline while Append was stuck (MaxPending 8)", in)
	}
	close(hist.gate)
}

// While History.Append is slow (an fsync), messages queue up and the next
// Append takes them all: batches grow with load, order is kept.
func TestBatchesGrowWhileAppendIsSlow(t *testing.T) {
	hist := newMemHistory()
	hist.delay = 30 * time.Millisecond
	ts := startServer(t, Config{}, nil, hist)
	reader := ts.dial(t, "/chat/r?name=reader", "")
	reader.expect("* reader joined")
	const senders, each = 5, 20
	var cs []*client
	for i := range senders {
		c := ts.dial(t, fmt.Sprintf("/chat/r?name=s%d", i), "")
		cs = append(cs, c)
	}
	eventually(t, "senders joined", func() bool { return len(ts.srv.Users("r")) == senders+1 })
	for _, c := range cs {
		go func() {
			for j := range each {
				if c.c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d", j)) != nil {
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for got := 0; got < senders*each; {
		line := reader.read()
		if strings.HasPrefix(line, "* ") {
			continue
		}
		var s, j int
		if _, err := fmt.Sscanf(line, "s%d: %d", &s, &j); err != nil || j != next[s] {
			t.Fatalf("line %q (want s%d: %d)", line, s, next[s])
		}
		next[s]++
		got++
	}
	hist.mu.Lock()
	calls, sizes := hist.appendCalls, slices.Clone(hist.appendSizes)
	hist.mu.Unlock()
	if calls > senders*each/4 || slices.Max(sizes) < 4 {
		t.Fatalf("%d Append calls for %d messages (sizes %v): messages were not grouped", calls, senders*each, sizes)
	}
	t.Logf("%d messages in %d Append calls: %v", senders*each, calls, sizes)
}

func TestOriginRefused(t *testing.T) {
	ts := startServer(t, Config{AllowedOrigins: []string{"https://ok.example"}}, nil, nil)
	for origin, ok := range map[string]bool{"https://ok.example": true, "https://evil.example": false, "": true} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(ts.ws+"/chat/r", h)
		if ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", origin, err)
				continue
			}
			_ = c.Close()
		} else if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v, want 403", origin, err)
		}
	}
}

// A store that does not answer does not hang Shutdown past its context:
// Append's context is cancelled, the unstored message is not broadcast.
func TestShutdownWithStuckAppend(t *testing.T) {
	hist := newMemHistory()
	hist.gate = make(chan struct{}) // never opened
	srv, err := New(testLimits(Config{Logger: testLogger(t)}), nil, hist)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &httpServer{}
	hs.start(ln, srv)
	defer hs.stop()
	ts := &testServer{srv: srv, ws: "ws://" + ln.Addr().String()}
	c := ts.dial(t, "/chat/r?name=a", "")
	c.expect("* a joined")
	c.send("never stored")
	eventually(t, "message in the room", func() bool { return srv.metrics.messagesIn.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(waitTime))
		_, data, err := c.c.ReadMessage()
		if err != nil {
			break // closed, one way or another
		}
		if string(data) == "a: never stored" {
			t.Fatal("a message that was not stored was broadcast")
		}
	}
	_ = c.c.Close()
	select {
	case <-done:
	case <-time.After(waitTime):
		t.Fatal("Shutdown did not return after its context ended")
	}
	if got := hist.all("r"); len(got) != 0 {
		t.Fatalf("stored %v", got)
	}
}
