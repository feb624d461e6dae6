package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// Slowloris and never-readers (issue 13): peers that dribble their HTTP
// handshake a byte at a time, and peers that complete the upgrade into the
// lobby and then never read a byte (a 4 KiB receive buffer, no pongs),
// from many loopback addresses, against the real binary in a child
// process (so the server's memory is its own, and each process stays
// under the 20,000 file descriptors the machine allows). Every attacker
// connects once and holds on until the server cuts it; while all of them
// are held, a normal client connects and chats in the attackers' room.
// Then every attacker must have been cut by its timeout — not before it,
// not much after — and the server must hold nothing of them.
//
// The settings are the built-in defaults but for the ping: handshake_timeout
// 10s (net/http's ReadHeaderTimeout cuts the dribblers), ping_interval 5s
// and ping_timeout 5s instead of 30s and 10s (a never-reader cannot answer
// a ping; the close handshake then waits close_timeout, 1s in tests), so
// that a run takes seconds, not a minute. The per-address limits are the
// defaults too (100 connections, 10 handshakes a second with bursts of
// 100), so the attackers come from one address per 100 of them; the
// normal client's 127.0.0.1 is exempt as usual.

// slowAttack describes one run.
type slowAttack struct {
	peers    int // attackers held at once: half dribblers, half never-readers
	addrs    int // source addresses, 127.0.0.10 and up (at most 100 attackers each)
	messages int // the normal client's round trips
	// room is where the never-readers go; the normal client chats in
	// the lobby (the default room, where "/" leads).
	room string
}

// slowFigures is what a run measured.
type slowFigures struct {
	connect          time.Duration   // the normal client's handshake to its welcome event
	heldWhileChat    int64           // attackers still held when the normal client had finished
	chatTime         time.Duration   // how long the normal client's chat took
	rtt              []time.Duration // its messages' round trips, sorted
	rssBase, rssPeak int64           // the server's VmRSS, bytes
	fdsPeak          int             // the server's open file descriptors at most
	dribbleCuts      []time.Duration // dribbler lifetimes, connect to the server's close
	readerCuts       []time.Duration // never-reader lifetimes (upgraded ones)
	refused          int64           // never-reader handshakes refused (429, 503)
	dialErrors       int64
}

const (
	slowHandshakeTimeout = 10 * time.Second
	slowPingInterval     = 5 * time.Second
	slowPingTimeout      = 5 * time.Second
	slowCloseTimeout     = time.Second // testConfig's close_timeout
	// slowCutBound: a cut later than its timeout plus this is a failure
	// (the timers are swept every quarter timeout; a loaded 2-core
	// machine adds its own delay).
	slowCutBound = 3 * time.Second
)

func (f *slowFigures) percentile(p float64) time.Duration {
	if len(f.rtt) == 0 {
		return 0
	}
	return f.rtt[min(len(f.rtt)-1, int(float64(len(f.rtt))*p))]
}

// runSlowAttack starts the server, the attack and the normal client, and
// returns the figures once the attack is over and the server is back to
// the normal client alone (failing tb otherwise).
func runSlowAttack(tb testing.TB, a slowAttack) *slowFigures {
	dir := tb.TempDir()
	cfg := testConfig(tb, dir, map[string]string{
		"server": fmt.Sprintf("handshake_timeout = %q\nping_interval = %q\nping_timeout = %q\nmax_connections = %d\n",
			slowHandshakeTimeout, slowPingInterval, slowPingTimeout, a.peers+100),
	})
	srv := startChild(tb, cfg)
	pid := srv.cmd.Process.Pid
	f := &slowFigures{}
	f.rssBase = procRSS(pid)

	// Sample the server's memory and descriptors until the end.
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampling sync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			f.rssPeak = max(f.rssPeak, procRSS(pid))
			f.fdsPeak = max(f.fdsPeak, procFDs(pid))
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	})

	atk := newAttackers(srv.addr, a.room)
	ctx, stop := context.WithCancel(context.Background())
	var peers sync.WaitGroup
	for i := range a.peers {
		src := net.IPv4(127, 0, 0, byte(10+i%a.addrs))
		if i%2 == 0 {
			peers.Go(func() { atk.dribbler(ctx, src) })
		} else {
			peers.Go(func() { atk.neverReader(ctx, src) })
		}
	}
	var bg sync.WaitGroup
	bg.Go(func() { atk.dribble(ctx) })
	bg.Go(func() { atk.pollReaders(ctx) })
	defer func() { // also on a failure: the attack always stops
		stop()
		peers.Wait()
		bg.Wait()
		stopSampling()
		sampling.Wait()
	}()

	// Every attacker connected, then the normal client, while they are
	// all held (the first cuts come handshake_timeout after the first
	// connections).
	deadline := time.Now().Add(waitLong + time.Duration(a.peers)*time.Millisecond)
	for atk.live.Load() < int64(a.peers) {
		if time.Now().After(deadline) {
			tb.Fatalf("only %d of %d attackers connected (%d dial errors, %d refused)", atk.live.Load(), a.peers, atk.dialErrors.Load(), atk.refused.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ...and the server has joined every never-reader to its room: their
	// joins, thousands within a second or two (each sent the room's
	// presence, thousands of names), are a burst of their own, over
	// before the attack's steady state the targets are about.
	for roomMembers(tb, srv.addr, a.room) < a.peers/2 {
		if time.Now().After(deadline) {
			tb.Fatalf("the server joined %d of %d never-readers", roomMembers(tb, srv.addr, a.room), a.peers/2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	chatStart := time.Now()
	normalChat(tb, srv.addr, a.messages, f)
	f.chatTime = time.Since(chatStart)
	f.heldWhileChat = atk.live.Load()
	// Every attacker ends when the server cuts it; the attack's context
	// bounds the wait should the server never do so.
	done := make(chan struct{})
	go func() { peers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(slowHandshakeTimeout + slowPingInterval + slowPingTimeout + slowCloseTimeout + waitLong):
		tb.Errorf("%d attackers still held long after every timeout", atk.live.Load())
	}
	stop()
	<-done
	bg.Wait()

	// The server lets go of every attacker: only the normal client's
	// connection is left.
	conns := -1.0
	for end := time.Now().Add(waitLong); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if conns = scrapeGauge(tb, srv.addr, "moonchat_connections"); conns == 1 {
			break
		}
	}
	if conns != 1 {
		tb.Errorf("the server holds %v WebSocket connections after the attack, want 1 (the normal client)", conns)
	}
	stopSampling()
	sampling.Wait()
	atk.mu.Lock()
	f.dribbleCuts, f.readerCuts = atk.dribbleCuts, atk.readerCuts
	atk.mu.Unlock()
	f.dialErrors = atk.dialErrors.Load()
	f.refused = atk.refused.Load()
	slices.Sort(f.rtt)
	return f
}

// normalChat connects a normal client (moonchat.v1) from 127.0.0.1 to the
// attackers' room and measures its connect time and round trips.
func normalChat(tb testing.TB, addr string, n int, f *slowFigures) {
	tb.Helper()
	u := url.URL{Scheme: "ws", Host: addr, Path: "/chat/lobby", RawQuery: "name=normal"}
	d := websocket.Dialer{Subprotocols: []string{"moonchat.v1"}, HandshakeTimeout: waitLong}
	start := time.Now()
	conn, _, err := d.Dial(u.String(), nil)
	if err != nil {
		tb.Fatalf("the normal client cannot connect during the attack: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	next := func(what string, match func(event) bool) {
		for end := time.Now().Add(waitLong); ; {
			_ = conn.SetReadDeadline(end)
			_, data, err := conn.ReadMessage()
			if err != nil {
				tb.Fatalf("normal client waiting for %s: %v", what, err)
			}
			var e event
			if json.Unmarshal(data, &e) == nil && match(e) {
				return
			}
		}
	}
	next("welcome", func(e event) bool { return e.Type == "welcome" })
	f.connect = time.Since(start)
	for i := range n {
		text := "ping " + strconv.Itoa(i)
		b, _ := json.Marshal(map[string]string{"type": "message", "text": text})
		sent := time.Now()
		_ = conn.SetWriteDeadline(sent.Add(waitLong))
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			tb.Fatalf("normal client send: %v", err)
		}
		next(text, func(e event) bool { return e.Type == "message" && e.User == "normal" && e.Text == text })
		f.rtt = append(f.rtt, time.Since(sent))
		time.Sleep(10 * time.Millisecond) // a person types slower than this
	}
}

// attackers is the shared state of one attack's peers.
type attackers struct {
	addr       string
	room       string       // the never-readers' room
	live       atomic.Int64 // attackers holding a connection
	dialErrors atomic.Int64
	refused    atomic.Int64 // never-readers answered with an HTTP refusal

	mu          sync.Mutex
	dribbling   map[net.Conn]struct{} // dribblers waiting for their next byte
	reading     map[int]chan struct{} // never-readers by fd: closed when the server cut it
	dribbleCuts []time.Duration
	readerCuts  []time.Duration
}

func newAttackers(addr, room string) *attackers {
	return &attackers{addr: addr, room: room, dribbling: make(map[net.Conn]struct{}), reading: make(map[int]chan struct{})}
}

// dial connects from src with a small receive buffer (set before the
// connection, so that the window is small from the start).
func (a *attackers) dial(ctx context.Context, src net.IP) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: src},
		Timeout:   waitLong,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	c, err := d.DialContext(ctx, "tcp", a.addr)
	if err != nil && ctx.Err() == nil {
		a.dialErrors.Add(1)
	}
	return c, err
}

// dribbler connects, sends the start of a request and then one byte every
// half second (dribble) until the server cuts it (or the attack ends).
func (a *attackers) dribbler(ctx context.Context, src net.IP) {
	start := time.Now()
	c, err := a.dial(ctx, src)
	if err != nil {
		return
	}
	defer c.Close()
	stopClose := context.AfterFunc(ctx, func() { c.Close() })
	defer stopClose()
	a.live.Add(1)
	defer a.live.Add(-1)
	_, _ = c.Write([]byte("GET /chat/lobby HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "))
	a.mu.Lock()
	a.dribbling[c] = struct{}{}
	a.mu.Unlock()
	buf := make([]byte, 512)
	for { // until the server closes (or the attack ends)
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	life := time.Since(start)
	a.mu.Lock()
	delete(a.dribbling, c)
	if ctx.Err() == nil {
		a.dribbleCuts = append(a.dribbleCuts, life)
	}
	a.mu.Unlock()
}

// dribble writes one more header byte to every dribbler twice a second.
func (a *attackers) dribble(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		conns := make([]net.Conn, 0, len(a.dribbling))
		for c := range a.dribbling {
			conns = append(conns, c)
		}
		a.mu.Unlock()
		for _, c := range conns {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("a"))
		}
	}
}

// neverReader completes a WebSocket handshake into the lobby and then
// reads nothing, answers nothing, until the server closes the connection
// (seen by pollReaders). A refused handshake (429, 503) is counted and
// tried again 200 ms later.
func (a *attackers) neverReader(ctx context.Context, src net.IP) {
	req := []byte("GET /chat/" + a.room + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	for ctx.Err() == nil {
		if a.holdOnce(ctx, src, req) {
			return
		}
		a.refused.Add(1)
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// holdOnce is one connection of a never-reader; false when it was refused.
func (a *attackers) holdOnce(ctx context.Context, src net.IP, req []byte) bool {
	start := time.Now()
	c, err := a.dial(ctx, src)
	if err != nil {
		return true // the attack ended, or dial errors are counted: give up
	}
	defer c.Close()
	fd := -1
	if rc, err := c.(*net.TCPConn).SyscallConn(); err == nil {
		_ = rc.Control(func(f uintptr) { fd = int(f) })
	}
	if _, err := c.Write(req); err != nil || fd < 0 {
		return true
	}
	a.live.Add(1)
	defer a.live.Add(-1)
	cut := make(chan struct{})
	a.mu.Lock()
	a.reading[fd] = cut
	a.mu.Unlock()
	select {
	case <-cut:
	case <-ctx.Done():
		a.mu.Lock()
		delete(a.reading, fd)
		a.mu.Unlock()
		return true
	}
	life := time.Since(start)
	// Peek (not read) at the answer: upgraded, or refused?
	var head [12]byte
	n, _, _ := unix.Recvfrom(fd, head[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if n != len(head) || string(head[:]) != "HTTP/1.1 101" {
		return false
	}
	a.mu.Lock()
	a.readerCuts = append(a.readerCuts, life)
	a.mu.Unlock()
	return true
}

// pollReaders checks every never-reader's socket for the server's FIN or
// RST (POLLRDHUP, POLLHUP, POLLERR) without reading it, five times a
// second, in one poll(2) call.
func (a *attackers) pollReaders(ctx context.Context) {
	var fds []unix.PollFd
	for sleepCtx(ctx, 200*time.Millisecond) {
		a.mu.Lock()
		fds = fds[:0]
		for fd := range a.reading {
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLRDHUP})
		}
		a.mu.Unlock()
		if len(fds) == 0 {
			continue
		}
		if _, err := unix.Poll(fds, 0); err != nil {
			continue // EINTR: next round
		}
		a.mu.Lock()
		for _, p := range fds {
			if p.Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
				if ch, ok := a.reading[int(p.Fd)]; ok {
					delete(a.reading, int(p.Fd))
					close(ch)
				}
			}
		}
		a.mu.Unlock()
	}
}

// sleepCtx sleeps d unless ctx ends first; it reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// procRSS is pid's resident memory in bytes (0 if unreadable).
func procRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procFDs is the number of pid's open file descriptors.
func procFDs(pid int) int {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return 0
	}
	return len(ents)
}

// scrapeGauge reads one unlabelled series from the server's /metrics.
func scrapeGauge(tb testing.TB, addr, name string) float64 {
	tb.Helper()
	code, body := httpGet(tb, "http://"+addr+"/metrics")
	if code != 200 {
		tb.Fatalf("/metrics: %d", code)
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	tb.Fatalf("/metrics has no %s", name)
	return 0
}

// roomMembers is the members of room now, from /api/rooms.
func roomMembers(tb testing.TB, addr, room string) int {
	tb.Helper()
	code, body := httpGet(tb, "http://"+addr+"/api/rooms")
	var v struct {
		Rooms []struct {
			Room    string `json:"room"`
			Members int    `json:"members"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		tb.Fatalf("/api/rooms: %d %v", code, err)
	}
	for _, r := range v.Rooms {
		if r.Room == room {
			return r.Members
		}
	}
	return 0
}

// checkCuts fails tb unless every attacker was cut by its timeout: not
// before it (something else cut it), not much after it.
func (f *slowFigures) checkCuts(tb testing.TB, a slowAttack) {
	tb.Helper()
	dribbleMax := slowHandshakeTimeout + slowCutBound
	readerMax := slowPingInterval + slowPingTimeout + slowCloseTimeout + slowCutBound
	if len(f.dribbleCuts) != (a.peers+1)/2 || len(f.readerCuts) != a.peers/2 {
		tb.Fatalf("cut: %d dribblers, %d never-readers; want all %d and %d", len(f.dribbleCuts), len(f.readerCuts), (a.peers+1)/2, a.peers/2)
	}
	if m := slices.Min(f.dribbleCuts); m < slowHandshakeTimeout {
		tb.Errorf("a dribbler was cut after %v, before handshake_timeout (%v)", m, slowHandshakeTimeout)
	}
	if m := slices.Min(f.readerCuts); m < slowPingInterval+slowPingTimeout {
		tb.Errorf("a never-reader was cut after %v, before ping_interval + ping_timeout (%v)", m, slowPingInterval+slowPingTimeout)
	}
	if m := slices.Max(f.dribbleCuts); m > dribbleMax {
		tb.Errorf("a dribbler was held %v, want at most handshake_timeout + %v = %v", m, slowCutBound, dribbleMax)
	}
	if m := slices.Max(f.readerCuts); m > readerMax {
		tb.Errorf("a never-reader was held %v, want at most ping_interval + ping_timeout + close_timeout + %v = %v", m, slowCutBound, readerMax)
	}
}

// String is the figures in one paragraph.
func (f *slowFigures) String(a slowAttack) string {
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("%d attackers (%d dribbling, %d never reading) from %d addresses: "+
		"normal client connected in %v; %d round trips in %v (%d attackers still held at the end) p50 %v p99 %v max %v; "+
		"server RSS %.1f MB before, %.1f MB at most (%.1f KB per attacker), %d descriptors at most; "+
		"cut: %d dribblers after %v-%v, %d never-readers after %v-%v; %d never-reader handshakes refused; %d dial errors",
		a.peers, (a.peers+1)/2, a.peers/2, a.addrs,
		f.connect.Round(time.Millisecond), len(f.rtt), f.chatTime.Round(time.Millisecond), f.heldWhileChat,
		f.percentile(0.5).Round(10*time.Microsecond), f.percentile(0.99).Round(10*time.Microsecond), f.percentile(1).Round(10*time.Microsecond),
		mb(f.rssBase), mb(f.rssPeak), float64(f.rssPeak-f.rssBase)/1024/float64(a.peers), f.fdsPeak,
		len(f.dribbleCuts), minDur(f.dribbleCuts).Round(time.Millisecond), maxDur(f.dribbleCuts).Round(time.Millisecond),
		len(f.readerCuts), minDur(f.readerCuts).Round(time.Millisecond), maxDur(f.readerCuts).Round(time.Millisecond),
		f.refused, f.dialErrors)
}

func minDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Min(d)
}

func maxDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}

// TestSlowPeers is CI's variant: 2,000 attackers. It checks what must
// hold whatever the machine's speed — the normal client connects and every
// one of its messages comes back while the attackers are held, every
// attacker is cut by its timeout, and the server lets go of all of them —
// and logs the figures. The 10,000-attacker run and its speed targets
// (connect within 1 s, p99 under 50 ms) are BenchmarkSlowPeers (make
// bench): speed targets are benchmarks here. About 20 s.
func TestSlowPeers(t *testing.T) {
	a := slowAttack{peers: 2000, addrs: 20, messages: 100, room: "lobby"}
	f := runSlowAttack(t, a)
	f.checkCuts(t, a)
	if len(f.rtt) != a.messages {
		t.Fatalf("%d round trips, want %d", len(f.rtt), a.messages)
	}
	t.Log(f.String(a))
}

// BenchmarkSlowPeers is the full run: 10,000 attackers from 100 loopback
// addresses against the binary, while they are all held, a normal client
// connects and chats in the lobby. Two cases: room=other, the
// never-readers in another room (the targets are checked: connect
// within 1 s, round-trip p99 under 50 ms), and room=lobby, the
// never-readers in the normal client's own room, where every message
// costs a write to each of their 5,000 sockets (the cost of a 5,000-member
// room, attackers or not: reported, not held to the targets; see
// docs/performance.md). It reports connect_ms, p50_ms, p99_ms, rss_MB and
// KB/attacker. One run per case whatever b.N (about 20 s each).
func BenchmarkSlowPeers(b *testing.B) {
	for _, room := range []string{"other", "lobby"} {
		b.Run("room="+room, func(b *testing.B) {
			a := slowAttack{peers: 10000, addrs: 100, messages: 200, room: room}
			if room == "lobby" {
				a.messages = 50 // slower: fewer, to finish while all are held
			}
			var f *slowFigures
			for b.Loop() {
				if f == nil {
					f = runSlowAttack(b, a)
				}
			}
			f.checkCuts(b, a)
			b.ReportMetric(float64(f.connect.Microseconds())/1000, "connect_ms")
			b.ReportMetric(float64(f.percentile(0.5).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(f.percentile(0.99).Microseconds())/1000, "p99_ms")
			b.ReportMetric(float64(f.rssPeak)/(1<<20), "rss_MB")
			b.ReportMetric(float64(f.rssPeak-f.rssBase)/1024/float64(a.peers), "KB/attacker")
			b.Log(f.String(a))
			if f.heldWhileChat != int64(a.peers) {
				b.Errorf("only %d of %d attackers were still held when the normal client finished", f.heldWhileChat, a.peers)
			}
			if room == "lobby" {
				return
			}
			if f.connect > time.Second {
				b.Errorf("the normal client took %v to connect during the attack, want at most 1s", f.connect)
			}
			if p := f.percentile(0.99); p > 50*time.Millisecond {
				b.Errorf("round trip p99 %v during the attack, want under 50ms", p)
			}
		})
	}
}

// TestSlowBody: a request whose body is dribbled (a POST to /api/login
// that announces 100 bytes and sends one) is cut handshake_timeout after it
// began, not held for as long as the client cares to wait: net/http's
// ReadTimeout covers the body as ReadHeaderTimeout covers the headers. A
// WebSocket is not cut by it: one opened before chats on after it.
func TestSlowBody(t *testing.T) {
	srv := startInProcess(t, testConfig(t, t.TempDir(), map[string]string{"server": "handshake_timeout = \"1s\"\n"}))
	alice := dial(t, srv.addr, "lobby", "alice", nil)
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(c, "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("a dribbled request body was still held after %v", waitLong)
			}
			break // closed by the server
		}
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("cut after %v, before handshake_timeout (1s)", d)
	}
	alice.send("still here")
	alice.waitFor("her message", func(e event) bool { return e.Type == "message" && e.Text == "still here" })
}
