package chatclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
	"github.com/moonchat/moonchat/internal/chatclient"
)

// server is a chat.Server on a fixed address that a test can stop and
// start again (a restart: the client reconnects to the same URL).
type server struct {
	t     *testing.T
	addr  string
	cfg   chat.Config
	hooks chat.Hooks
	hist  chat.History
	srv   *chat.Server
	hs    *http.Server
	done  chan struct{}
}

func startServer(t *testing.T, cfg chat.Config, hooks chat.Hooks, hist chat.History) *server {
	t.Helper()
	s := &server{t: t, addr: "127.0.0.1:0", cfg: cfg, hooks: hooks, hist: hist}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	cfg := chattest.Limits(s.cfg)
	cfg.Logger = chattest.TestLogger(s.t)
	srv, err := chat.New(cfg, s.hooks, s.hist)
	if err != nil {
		s.t.Fatal(err)
	}
	var l net.Listener
	deadline := time.Now().Add(chattest.Wait)
	for {
		if l, err = net.Listen("tcp", s.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.srv, s.hs, s.done = srv, &http.Server{Handler: srv}, make(chan struct{})
	go func() {
		// Owned by the test: stop waits for it.
		defer close(s.done)
		_ = s.hs.Serve(l)
	}()
}

// stop shuts the server down (clients get 1001). A second call is harmless.
func (s *server) stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.hs.Close()
	<-s.done
	s.srv = nil
}

func (s *server) url(path string) string { return "ws://" + s.addr + path }

// run is a client run by a test, with what it delivered.
type run struct {
	t    *testing.T
	c    *chatclient.Client
	done chan error

	mu      sync.Mutex
	ups     []chatclient.Update
	changed chan struct{}
}

// startClient runs a client with short backoffs and records its updates.
func startClient(t *testing.T, opts chatclient.Options) *run {
	t.Helper()
	opts.MinBackoff, opts.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	c, err := chatclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, c: c, done: make(chan error, 1), changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Owned by the test: the cleanup cancels it and waits.
		r.done <- c.Run(ctx)
	}()
	go func() {
		// Owned by the test: ends when Run closes Updates.
		for u := range c.Updates() {
			r.mu.Lock()
			r.ups = append(r.ups, u)
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(chattest.Wait):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return r
}

// waitFor waits until ok accepts the updates so far.
func (r *run) waitFor(what string, ok func([]chatclient.Update) bool) {
	r.t.Helper()
	timer := time.NewTimer(chattest.Wait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ups, ch := r.ups, r.changed
		r.mu.Unlock()
		if ok(ups) {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			r.t.Fatalf("no %s within %v; updates:\n%s", what, chattest.Wait, dump(ups))
		}
	}
}

// waitState waits for a state update with status st (after the n-th).
func (r *run) waitState(st chatclient.Status, n int) {
	r.t.Helper()
	r.waitFor(st.String(), func(ups []chatclient.Update) bool {
		seen := 0
		for _, u := range ups {
			if u.State != nil && u.State.Status == st {
				seen++
			}
		}
		return seen >= n
	})
}

// waitSettled waits until n sends are settled (recorded).
func (r *run) waitSettled(n int) []chatclient.Settled {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("%d settled sends", n), func(ups []chatclient.Update) bool {
		k := 0
		for _, u := range ups {
			if u.Settled != nil {
				k++
			}
		}
		return k >= n
	})
	return r.settled()
}

// settled returns the settled sends so far.
func (r *run) settled() []chatclient.Settled {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []chatclient.Settled
	for _, u := range r.ups {
		if u.Settled != nil {
			out = append(out, *u.Settled)
		}
	}
	return out
}

// messages returns the room messages delivered (live and in pages but
// "before" ones), in delivery order.
func messages(ups []chatclient.Update) []chatclient.Event {
	var out []chatclient.Event
	for _, u := range ups {
		e := u.Event
		switch {
		case e == nil:
		case e.Type == "message":
			out = append(out, *e)
		case e.Type == "history" && e.With == "" && e.Reason != "before":
			out = append(out, e.Messages...)
		}
	}
	return out
}

func dump(ups []chatclient.Update) string {
	var b strings.Builder
	for _, u := range ups {
		switch {
		case u.Event != nil:
			fmt.Fprintf(&b, "event %s id=%d user=%s text=%q reason=%s n=%d more=%v code=%s\n", u.Event.Type, u.Event.ID, u.Event.User, u.Event.Text, u.Event.Reason, len(u.Event.Messages), u.Event.More, u.Event.Code)
		case u.State != nil:
			fmt.Fprintf(&b, "state %s since=%d err=%v\n", u.State.Status, u.State.Since, u.State.Err)
		case u.Settled != nil:
			fmt.Fprintf(&b, "settled %q ok=%v %s\n", u.Settled.Text, u.Settled.OK, u.Settled.Reason)
		}
	}
	return b.String()
}

// inOrderOnce checks that msgs are the ids first..last, each once.
func inOrderOnce(t *testing.T, msgs []chatclient.Event, first, last uint64) {
	t.Helper()
	var ids []uint64
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	want := first
	for _, id := range ids {
		if id != want {
			t.Fatalf("delivered ids %v, want %d..%d once each in order", ids, first, last)
		}
		want++
	}
	if want != last+1 {
		t.Fatalf("delivered ids %v, want %d..%d", ids, first, last)
	}
}

// TestResumeAfterRestart: a client whose server restarts resumes with
// since=ID; the messages stored meanwhile (more than one page: api_limit
// 3) and those sent live during the catch-up are delivered once each, in
// id order, and sending works again.
func TestResumeAfterRestart(t *testing.T) {
	hist := chattest.NewHistory()
	srv := startServer(t, chat.Config{APILimit: 3, Replay: 3}, nil, hist)
	r := startClient(t, chatclient.Options{URL: srv.url("/chat/lobby"), Name: "alice"})
	r.waitState(chatclient.Connected, 1)
	r.c.Send("one")
	if s := r.waitSettled(1); len(s) != 1 || !s[0].OK {
		t.Fatalf("settled %+v", s)
	}

	srv.stop()
	r.waitState(chatclient.Reconnecting, 1)
	for i := 1; i <= 7; i++ {
		hist.Add("lobby", "bob", fmt.Sprintf("missed %d", i), time.Now())
	}
	srv.start()
	bob := chattest.Dial(t, srv.url("/chat/lobby?name=bob"), "moonchat.v1")
	for i := 1; i <= 5; i++ {
		bob.SendJSON(map[string]string{"type": "message", "text": fmt.Sprintf("live %d", i)})
	}
	r.c.Send("two")
	r.waitFor("every message", func(ups []chatclient.Update) bool {
		ms := messages(ups)
		return len(ms) > 0 && ms[len(ms)-1].ID >= 14 && r.c.Pending() == 0
	})
	r.mu.Lock()
	ms := messages(r.ups)
	r.mu.Unlock()
	inOrderOnce(t, ms, 1, 14)
	texts := map[string]int{}
	for _, m := range ms {
		texts[m.Text]++
	}
	if texts["one"] != 1 || texts["two"] != 1 || texts["missed 7"] != 1 || texts["live 5"] != 1 {
		t.Fatalf("texts %v", texts)
	}
	if got := r.c.Since(); got != 14 {
		t.Fatalf("Since %d, want 14", got)
	}
}

// proxy forwards TCP connections to a server and can cut them all, as a
// network that drops, or hold what the client sends.
type proxy struct {
	l      net.Listener
	to     string
	mu     sync.Mutex
	conns  []net.Conn
	holdUp bool // client bytes are read and thrown away
	refuse bool // new connections are closed at once
}

func newProxy(t *testing.T, to string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, to: to}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		p.cut()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		// Owned by the test (the cleanup waits): accepts until closed.
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			refuse := p.refuse
			p.mu.Unlock()
			if refuse {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.mu.Lock()
						hold := p.holdUp
						p.mu.Unlock()
						if !hold {
							if _, werr := s.Write(buf[:n]); werr != nil {
								return
							}
						}
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, s)
				c.Close()
			}()
		}
	}()
	return p
}

// cut closes every connection through the proxy (new ones still go).
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.holdUp = false
}

// refuseNew closes new connections at once (on) or forwards them (off).
func (p *proxy) refuseNew(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

func (p *proxy) hold() {
	p.mu.Lock()
	p.holdUp = true
	p.mu.Unlock()
}

// TestSendLostInADrop: a message whose echo was lost with the connection
// is found stored in the resume batch and not sent again; one the server
// never received is sent again after the resume. Each is in the room once.
func TestSendLostInADrop(t *testing.T) {
	hist := chattest.NewHistory()
	srv := startServer(t, chat.Config{APILimit: 50, Replay: 10}, nil, hist)
	px := newProxy(t, srv.addr)
	r := startClient(t, chatclient.Options{URL: "ws://" + px.l.Addr().String() + "/chat/lobby", Name: "alice"})
	r.waitState(chatclient.Connected, 1)
	r.c.Send("first")
	r.waitSettled(1)

	// Stored, but the connection drops before the echo comes back.
	release := hist.BlockAppends()
	r.c.Send("stored, echo lost")
	chattest.Eventually(t, "the message at the store", func() bool { return hist.Blocked() == 1 })
	px.cut()
	release()
	r.waitState(chatclient.Connected, 2)
	r.waitSettled(2)

	// Never received by the server.
	px.hold()
	r.c.Send("never arrived")
	time.Sleep(50 * time.Millisecond) // written into the void
	px.cut()
	r.waitState(chatclient.Connected, 3)
	r.waitSettled(3)

	count := map[string]int{}
	for _, m := range hist.All("lobby") {
		count[m.Text]++
	}
	if count["first"] != 1 || count["stored, echo lost"] != 1 || count["never arrived"] != 1 {
		t.Fatalf("stored %v, want each message once", count)
	}
	for _, s := range r.settled() {
		if !s.OK {
			t.Fatalf("settled %+v", s)
		}
	}
	if n := len(r.settled()); n != 3 {
		t.Fatalf("%d sends settled, want 3:\n%s", n, dump(r.ups))
	}
}

// TestSettled: a message a hook drops without a word is settled (not OK)
// by the presence barrier; a refused one carries the server's reason; the
// others are acknowledged by their echo; a /command is settled OK.
func TestSettled(t *testing.T) {
	hooks := &chattest.Hooks{OnMessage: func(u chat.User, m *chat.Message) chat.MessageResult {
		if m.Text == "secret" {
			return chat.MessageResult{Drop: true}
		}
		return chat.MessageResult{}
	}}
	srv := startServer(t, chat.Config{MaxTextBytes: 20}, hooks, chattest.NewHistory())
	r := startClient(t, chatclient.Options{URL: srv.url("/chat/lobby"), Name: "alice"})
	r.waitState(chatclient.Connected, 1)
	for _, s := range []string{"hello", "secret", "a text longer than twenty bytes", "bye"} {
		r.c.Send(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	if err := r.c.WaitSent(ctx); err != nil {
		t.Fatalf("%v:\n%s", err, dump(r.ups))
	}
	got := map[string]chatclient.Settled{}
	for _, s := range r.waitSettled(4) {
		got[s.Text] = s
	}
	if !got["hello"].OK || !got["bye"].OK || got["secret"].OK || got["a text longer than twenty bytes"].OK ||
		!strings.Contains(got["a text longer than twenty bytes"].Reason, "too long") ||
		!strings.Contains(got["secret"].Reason, "without a reason") {
		t.Fatalf("settled %+v", got)
	}
}

// TestRefused: a refused handshake or join ends Run with the server's
// reason, without retrying.
func TestRefused(t *testing.T) {
	srv := startServer(t, chat.Config{}, nil, nil)
	for _, tc := range []struct {
		path string
		want string
	}{
		{"/elsewhere", "HTTP 404"},
		{"/chat/lobby?name=a%20b", "invalid name"},
	} {
		c, err := chatclient.New(chatclient.Options{URL: srv.url(tc.path), MinBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			// Owned by the test: ends with Run.
			for range c.Updates() {
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
		err = c.Run(ctx)
		cancel()
		var ce *chatclient.ClosedError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: Run returned %v, want a ClosedError with %q", tc.path, err, tc.want)
		}
	}
}

// TestOlder: Older pages back from the replay to the first message.
func TestOlder(t *testing.T) {
	hist := chattest.NewHistory()
	hist.Seed("lobby", "carol", 120)
	srv := startServer(t, chat.Config{Replay: 50}, nil, hist)
	r := startClient(t, chatclient.Options{URL: srv.url("/chat/lobby"), Name: "alice", PageSize: 50})
	r.waitState(chatclient.Connected, 1)
	r.waitFor("the replay", func(ups []chatclient.Update) bool { return len(messages(ups)) == 50 })
	var pages [][2]uint64
	for r.c.HasOlder() {
		n := len(pages)
		if !r.c.Older() {
			t.Fatal("Older refused while older messages exist")
		}
		r.waitFor("a page", func(ups []chatclient.Update) bool {
			pages = pages[:0]
			for _, u := range ups {
				if e := u.Event; e != nil && e.Type == "history" && e.Reason == "before" {
					pages = append(pages, [2]uint64{e.Messages[0].ID, e.Messages[len(e.Messages)-1].ID})
				}
			}
			return len(pages) > n
		})
	}
	if fmt.Sprint(pages) != "[[21 70] [1 20]]" {
		t.Fatalf("pages %v", pages)
	}
	if r.c.Older() {
		t.Fatal("Older asked for a page before the first message")
	}
}

// bearerAuth makes "Authorization: Bearer NAME" the account id-NAME
// called NAME (anyone else a guest).
type bearerAuth struct{}

func (bearerAuth) Authenticate(r *http.Request, room string) (chat.Identity, bool, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return chat.Identity{}, false, nil
	}
	return chat.Identity{ID: "id-" + name, Name: name}, true, nil
}

// TestDirectResume: a conversation between accounts resumes after a
// drop: the direct messages stored while the client was away come in an
// "after" page, once each and in order, and a direct message sent after
// the reconnect is acknowledged.
func TestDirectResume(t *testing.T) {
	hist := chattest.NewHistory()
	srv := startServer(t, chat.Config{Authenticator: bearerAuth{}}, nil, hist)
	px := newProxy(t, srv.addr)
	r := startClient(t, chatclient.Options{URL: "ws://" + px.l.Addr().String() + "/chat/lobby", Token: "alice"})
	r.waitFor("direct messages on", func(ups []chatclient.Update) bool {
		for _, u := range ups {
			if u.State != nil && u.State.Direct {
				return true
			}
		}
		return false
	})
	bob := chattest.DialHeader(t, "127.0.0.1", srv.url("/chat/dev"), "moonchat.v1", http.Header{"Authorization": {"Bearer bob"}})
	bob.SendJSON(map[string]string{"type": "direct", "to": "alice", "text": "dm 1"})
	directs := func(ups []chatclient.Update) []chatclient.Event {
		var out []chatclient.Event
		for _, u := range ups {
			switch e := u.Event; {
			case e == nil:
			case e.Type == "direct":
				out = append(out, *e)
			case e.Type == "history" && e.With != "":
				out = append(out, e.Messages...)
			}
		}
		return out
	}
	r.waitFor("dm 1", func(ups []chatclient.Update) bool { return len(directs(ups)) == 1 })

	px.refuseNew(true)
	px.cut()
	r.waitState(chatclient.Reconnecting, 1)
	bob.SendJSON(map[string]string{"type": "direct", "to": "alice", "text": "dm 2"})
	bob.SendJSON(map[string]string{"type": "direct", "to": "alice", "text": "dm 3"})
	for i := 0; i < 2; i++ {
		bob.SkipTo(func(f string) bool { return strings.Contains(f, `"type":"direct"`) })
	}
	px.refuseNew(false)
	r.waitState(chatclient.Connected, 2)
	if err := r.c.SendDirect("bob", "back"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("every direct message", func(ups []chatclient.Update) bool { return len(directs(ups)) >= 4 && r.c.Pending() == 0 })
	r.mu.Lock()
	ds := directs(r.ups)
	r.mu.Unlock()
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%d %s %s", d.ID, d.With, d.Text))
	}
	if strings.Join(got, "|") != "1 bob dm 1|2 bob dm 2|3 bob dm 3|4 bob back" {
		t.Fatalf("direct messages %q", got)
	}
	if s := r.waitSettled(1); !s[0].OK || s[0].To != "bob" {
		t.Fatalf("settled %+v", s)
	}
}
