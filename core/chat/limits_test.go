package chat_test

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
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/core/ws"
)

func TestSlowConsumerEvicted(t *testing.T) {
	t.Run("room goroutine writes", func(t *testing.T) {
		testSlowConsumerEvicted(t, chat.WithFanout(chat.Config{MaxTextBytes: 40000, WS: wsQueue(32 << 10)}, -1, 0))
	})
	// The sweepers find the slow consumer; the room removes it.
	t.Run("sweepers", func(t *testing.T) {
		testSlowConsumerEvicted(t, chat.WithFanout(chat.Config{MaxTextBytes: 40000, WS: wsQueue(32 << 10)}, 2, 1))
	})
}

func testSlowConsumerEvicted(t *testing.T, cfg chat.Config) {
	ts := chattest.Start(t, cfg, nil, nil)
	// The slow client never reads and has a tiny receive buffer, so the
	// server's queue for it fills up.
	d := websocket.Dialer{
		HandshakeTimeout: chattest.Wait,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_ = c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		},
	}
	slow, _, err := d.Dial(ts.WS+"/chat/r?name=slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast := ts.Dial(t, "/chat/r?name=fast", "")
	chattest.Eventually(t, "both joined", func() bool { return len(ts.Chat.Users("r")) == 2 })
	fast.SkipTo(func(s string) bool { return s == "* fast joined" })

	text := strings.Repeat("x", 30000)
	// ~12 MB: beyond the slow client's buffers, the server's socket send
	// buffer (Linux autotunes it up to 4 MB) and its 32 KB queue.
	const n = 400
	go func() {
		for i := range n {
			if fast.Conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d %s", i, text)) != nil {
				return
			}
		}
	}()
	sawLeft := false
	for i := range n {
		line := fast.SkipTo(func(s string) bool {
			sawLeft = sawLeft || s == "* slow left"
			return strings.HasPrefix(s, "fast: ")
		})
		if want := fmt.Sprintf("fast: %d ", i); !strings.HasPrefix(line, want) {
			t.Fatalf("message %d: got %.20q", i, line)
		}
	}
	chattest.Eventually(t, "slow consumer gone", func() bool { return len(ts.Chat.Users("r")) == 1 })
	// The others are told.
	if !sawLeft {
		fast.SkipTo(func(s string) bool { return s == "* slow left" })
	}
	_, body, _ := ts.Get(t, "/metrics")
	if !strings.Contains(body, "moonchat_slow_consumers_total 1\n") {
		t.Fatalf("slow consumer not counted:\n%s", body)
	}
}

// wsQueue is an engine config with a small write queue.
func wsQueue(n int) (c ws.Config) {
	c.MaxQueueBytes = n
	c.WriteTimeout = chattest.Wait
	return c
}

func TestMaxConnectionsAndRooms(t *testing.T) {
	ts := chattest.Start(t, chat.Config{MaxConnections: 2, MaxRooms: 1}, nil, nil)
	a := ts.Dial(t, "/chat/one?name=a", "")
	a.Expect("* a joined")
	r := ts.Dial(t, "/chat/two?name=b", "")
	r.Expect("* too many rooms")
	r.ExpectCloseReason(1013, "too many rooms")
	chattest.Eventually(t, "refused connection released", func() bool { return metric(t, ts, "moonchat_connections") == 1 })
	b := ts.Dial(t, "/chat/one?name=b", "")
	b.Expect("* b joined")
	// Full: refused before the upgrade (TestServerFull has the details).
	if _, resp, err := ts.TryDial("/chat/one?name=c", ""); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over max_connections: %v %v", resp, err)
	}
	_ = b.Conn.Close()
	a.Expect("* b joined", "* b left")
	chattest.Eventually(t, "slot free", func() bool { return metric(t, ts, "moonchat_connections") == 1 })
	c := ts.Dial(t, "/chat/one?name=c", "")
	c.Expect("* c joined")
}

func TestHTTPEndpoints(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, nil)
	if status, body, _ := ts.Get(t, "/healthz"); status != 200 || body != "ok" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	status, body, hdr := ts.Get(t, "/")
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "<html") {
		t.Fatalf("/: %d %s %.80q", status, hdr.Get("Content-Type"), body)
	}
	for _, f := range []string{"/app.js", "/style.css"} {
		if status, _, _ := ts.Get(t, f); status != 200 {
			t.Errorf("%s: %d", f, status)
		}
	}
	if status, _, _ := ts.Get(t, "/nope"); status != 404 {
		t.Errorf("/nope: %d", status)
	}
	status, body, hdr = ts.Get(t, "/metrics")
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
	hist := chattest.NewHistory()
	srv, err := chat.New(chattest.Limits(chat.Config{Logger: chattest.TestLogger(t)}), &chattest.Hooks{}, hist)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &chattest.Server{Chat: srv, WS: "ws://" + ln.Addr().String(), HTTP: "http://" + ln.Addr().String()}
	hs := &httpServer{}
	hs.start(ln, srv)

	var clients []*chattest.Client
	for i := range 3 {
		c := ts.Dial(t, fmt.Sprintf("/chat/r%d?name=u", i%2), []string{"", chat.SubprotocolJSON}[i%2])
		clients = append(clients, c)
	}
	chattest.Eventually(t, "joined", func() bool { return len(srv.Users("r0"))+len(srv.Users("r1")) == 3 })
	// Messages sent right before the shutdown are stored and delivered.
	clients[0].Send("last words")
	clients[0].SkipTo(func(s string) bool { return s == "u: last words" })

	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	for _, c := range clients {
		c.ExpectCloseReason(1001, "server shutting down")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, resp, err := ts.TryDial("/chat/r0", ""); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("upgrade after shutdown: %v %v", err, resp)
	}
	hs.stop()
	for _, c := range clients {
		_ = c.Conn.Close()
	}
	chattest.Eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if len(hist.All("r0")) != 1 {
		t.Fatalf("history: %v", hist.All("r0"))
	}
}

// The room pipeline holds at most MaxPending messages per member: while
// History.Append is stuck, a fast sender is paused instead of queueing
// without bound.
func TestBackpressurePausesSender(t *testing.T) {
	hist := chattest.NewHistory()
	release := hist.BlockAppends()
	ts := chattest.Start(t, chat.Config{MaxPending: 8, MaxTextBytes: 4096}, nil, hist)
	c := ts.Dial(t, "/chat/r?name=a", "")
	c.Expect("* a joined")
	text := strings.Repeat("y", 4000)
	sent := make(chan int, 1)
	go func() {
		i := 0
		_ = c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for ; i < 4000; i++ {
			if c.Conn.WriteMessage(websocket.TextMessage, []byte(text)) != nil {
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
	in := metric(t, ts, "moonchat_messages_in_total")
	if in > 200 {
		t.Fatalf("%d messages entered the room pipeline while Append was stuck (MaxPending 8)", int(in))
	}
	release()
}

// While History.Append is slow (an fsync), messages queue up and the next
// Append takes them all: batches grow with load, order is kept.
func TestBatchesGrowWhileAppendIsSlow(t *testing.T) {
	hist := chattest.NewHistory()
	hist.SlowAppends(30 * time.Millisecond)
	ts := chattest.Start(t, chat.Config{}, nil, hist)
	reader := ts.Dial(t, "/chat/r?name=reader", "")
	reader.Expect("* reader joined")
	const senders, each = 5, 20
	var cs []*chattest.Client
	for i := range senders {
		c := ts.Dial(t, fmt.Sprintf("/chat/r?name=s%d", i), "")
		cs = append(cs, c)
	}
	chattest.Eventually(t, "senders joined", func() bool { return len(ts.Chat.Users("r")) == senders+1 })
	for _, c := range cs {
		go func() {
			for j := range each {
				if c.Conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "%d", j)) != nil {
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for got := 0; got < senders*each; {
		line := reader.Read()
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
	sizes := hist.AppendSizes()
	calls := len(sizes)
	if calls > senders*each/4 || slices.Max(sizes) < 4 {
		t.Fatalf("%d Append calls for %d messages (sizes %v): messages were not grouped", calls, senders*each, sizes)
	}
	t.Logf("%d messages in %d Append calls: %v", senders*each, calls, sizes)
}

func TestOriginRefused(t *testing.T) {
	ts := chattest.Start(t, chat.Config{AllowedOrigins: []string{"https://ok.example"}}, nil, nil)
	for origin, ok := range map[string]bool{"https://ok.example": true, "https://evil.example": false, "": true} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(ts.WS+"/chat/r", h)
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
	hist := chattest.NewHistory()
	hist.BlockAppends() // never released
	srv, err := chat.New(chattest.Limits(chat.Config{Logger: chattest.TestLogger(t)}), nil, hist)
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
	ts := &chattest.Server{Chat: srv, WS: "ws://" + ln.Addr().String(), HTTP: "http://" + ln.Addr().String()}
	c := ts.Dial(t, "/chat/r?name=a", "")
	c.Expect("* a joined")
	c.Send("never stored")
	chattest.Eventually(t, "message in the room", func() bool { return metric(t, ts, "moonchat_messages_in_total") == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		_ = c.Conn.SetReadDeadline(time.Now().Add(chattest.Wait))
		_, data, err := c.Conn.ReadMessage()
		if err != nil {
			break // closed, one way or another
		}
		if string(data) == "a: never stored" {
			t.Fatal("a message that was not stored was broadcast")
		}
	}
	_ = c.Conn.Close()
	select {
	case <-done:
	case <-time.After(chattest.Wait):
		t.Fatal("Shutdown did not return after its context ended")
	}
	if got := hist.All("r"); len(got) != 0 {
		t.Fatalf("stored %v", got)
	}
}
