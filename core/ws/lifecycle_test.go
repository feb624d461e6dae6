package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openConn dials and returns the client and the server-side Conn.
func openConn(t *testing.T, ts *testServer) (*rawClient, *Conn) {
	t.Helper()
	rc, _ := dial(t, ts.addr, nil)
	want := rc.nc.LocalAddr().String()
	for {
		ev := ts.h.next(t, "open")
		if ev.c.RemoteAddr() == want {
			return rc, ev.c
		}
	}
}

// openClient dials with Dial (for tests that need no byte-level control
// of the client) and returns the client and the server-side Conn.
func openClient(t *testing.T, ts *testServer) (*ClientConn, *Conn) {
	t.Helper()
	cc, _, err := Dial(context.Background(), "ws://"+ts.addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := cc.LocalAddr().String()
	for {
		ev := ts.h.next(t, "open")
		if ev.c.RemoteAddr() == want {
			return cc, ev.c
		}
	}
}

// expectRead reads one message from cc and checks it.
func expectRead(t *testing.T, cc *ClientConn, op Opcode, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	gotOp, got, err := cc.ReadMessage(ctx)
	if err != nil || gotOp != op || !bytes.Equal(got, data) {
		t.Fatalf("read %s %d bytes, %v; want %s %d bytes", gotOp, len(got), err, op, len(data))
	}
}

func TestServerInitiatedClose(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{CloseTimeout: 300 * time.Millisecond}, fallback, nil)
		t.Run("peer replies", func(t *testing.T) {
			rc, c := openConn(t, ts)
			if err := c.Close(4000, "bye"); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(4000, "again"); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
			if err := c.WriteMessage(OpText, []byte("late")); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after Close: %v", err)
			}
			f := rc.mustFrame()
			if f.op != OpClose || string(f.payload) != "\x0f\xa0bye" {
				t.Fatalf("got %v %q", f.op, f.payload)
			}
			// Data sent before our close reply is not delivered any more.
			rc.write(text("ignored"))
			rc.write(closeF(closeBody(4000, "")))
			rc.expectEOF()
			if ce := ts.h.closeOf(t, rc); ce.Code != 4000 || ce.Reason != "bye" {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("peer never replies", func(t *testing.T) {
			rc, c := openConn(t, ts)
			_ = c.Close(StatusNormalClosure, "")
			f := rc.mustFrame()
			if f.op != OpClose {
				t.Fatalf("got %v", f.op)
			}
			// No reply: the server drops TCP after CloseTimeout.
			rc.expectEOF()
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusNormalClosure {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("invalid code refused", func(t *testing.T) {
			_, c := openConn(t, ts)
			if err := c.Close(1006, ""); err == nil {
				t.Fatal("Close(1006) accepted")
			}
		})
	})
}

func TestKeepalive(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		cfg := Config{PingInterval: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond}
		ts := newTestServer(t, cfg, fallback, nil)
		rc, _ := openConn(t, ts)
		// Answer two pings: the connection stays up.
		for i := 0; i < 2; i++ {
			f := rc.mustFrame()
			if f.op != OpPing {
				t.Fatalf("got %v, want ping", f.op)
			}
			rc.write(frame(finBit|byte(OpPong), f.payload))
		}
		// Stop answering: closed for ping timeout, reported as 1006.
		if ce := ts.h.closeOf(t, rc); ce.Code != StatusAbnormalClosure || ce.Reason != "ping timeout" {
			t.Fatalf("OnClose %+v", ce)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{IdleTimeout: 200 * time.Millisecond}, fallback, nil)
		rc, _ := openConn(t, ts)
		f := rc.mustFrame()
		if f.op != OpClose || string(f.payload[2:]) != "idle timeout" {
			t.Fatalf("got %v %q", f.op, f.payload)
		}
		rc.write(closeF(f.payload[:2]))
		rc.expectEOF()
		if ce := ts.h.closeOf(t, rc); ce.Code != StatusGoingAway {
			t.Fatalf("OnClose %+v", ce)
		}
	})
}

// TestSlowConsumer: a client that never reads is closed (1008) and the
// write that overflowed returns ErrSlowConsumer; others are still served.
func TestSlowConsumer(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		t.Run("queue full", func(t *testing.T) {
			ts := newTestServer(t, Config{MaxQueueBytes: 256 << 10}, fallback, nil)
			rc, c := openConn(t, ts)
			msg := bytes.Repeat([]byte("z"), 64<<10)
			var err error
			for i := 0; i < 2000 && err == nil; i++ { // at most 128 MiB
				err = c.WriteMessage(OpBinary, msg)
			}
			if !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("got %v, want ErrSlowConsumer", err)
			}
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusPolicyViolation || ce.Reason != "slow consumer" {
				t.Fatalf("OnClose %+v", ce)
			}
			if err := c.WriteMessage(OpText, []byte("x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after slow consumer: %v", err)
			}
			other, _ := dial(t, ts.addr, nil)
			other.write(text("still serving"))
			other.expectMessage(OpText, []byte("still serving"))
		})
		t.Run("no progress", func(t *testing.T) {
			ts := newTestServer(t, Config{MaxQueueBytes: 1 << 30, WriteTimeout: 300 * time.Millisecond}, fallback, nil)
			rc, c := openConn(t, ts)
			msg := bytes.Repeat([]byte("z"), 256<<10)
			// A small client receive buffer (no autotuning) and 32 MiB
			// written: far more than the kernel buffers can absorb, so
			// the queue must stall.
			if err := rc.nc.(*net.TCPConn).SetReadBuffer(8 << 10); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 128; i++ {
				if err := c.WriteMessage(OpBinary, msg); err != nil {
					if !errors.Is(err, ErrClosed) { // already closed on a slow machine
						t.Fatal(err)
					}
					break
				}
			}
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusPolicyViolation {
				t.Fatalf("OnClose %+v", ce)
			}
			if c.Buffered() != 0 {
				t.Fatalf("Buffered = %d after close", c.Buffered())
			}
		})
	})
}

// TestQueuedWritesArriveInOrder fills the socket so that writes queue up
// (and go out with writev), then reads everything back.
func TestQueuedWritesArriveInOrder(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{MaxQueueBytes: 64 << 20}, fallback, nil)
		rc, c := openConn(t, ts)
		big := NewPrepared(OpBinary, bytes.Repeat([]byte("P"), 1<<20))
		const n = 24
		for i := 0; i < n; i++ {
			if i%3 == 0 {
				if err := c.WritePrepared(big); err != nil {
					t.Fatal(err)
				}
			} else if err := c.WriteMessage(OpText, []byte(fmt.Sprintf("msg %d", i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			if i%3 == 0 {
				rc.expectMessage(OpBinary, bytes.Repeat([]byte("P"), 1<<20))
			} else {
				rc.expectMessage(OpText, []byte(fmt.Sprintf("msg %d", i)))
			}
		}
	})
}

func TestPauseResume(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		h := newRecHandler()
		h.onMessage = func(c *Conn, op Opcode, data []byte) {
			if string(data) == "pause" {
				c.PauseReading()
			}
			_ = c.WriteMessage(op, data)
		}
		ts := newTestServer(t, Config{}, fallback, h)
		rc, c := openConn(t, ts)
		rc.write(append(append(text("pause"), text("a")...), text("b")...))
		if ev := h.next(t, "message"); string(ev.data) != "pause" {
			t.Fatalf("got %q", ev.data)
		}
		rc.expectMessage(OpText, []byte("pause"))
		rc.write(text("c"))
		// A negative check needs a pause; nothing may arrive while paused.
		select {
		case ev := <-h.events:
			t.Fatalf("event while paused: %s %q", ev.kind, ev.data)
		case <-time.After(200 * time.Millisecond):
		}
		c.ResumeReading()
		for _, want := range []string{"a", "b", "c"} {
			rc.expectMessage(OpText, []byte(want))
		}
	})
}

func TestPreparedToMany(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		p := NewPrepared(OpText, []byte("x"), []byte("yy"), bytes.Repeat([]byte("z"), 70000))
		if p.Len() != 3 {
			t.Fatalf("Len %d", p.Len())
		}
		var ccs []*ClientConn
		for i := 0; i < 5; i++ {
			cc, c := openClient(t, ts)
			if err := c.WritePrepared(p); err != nil {
				t.Fatal(err)
			}
			ccs = append(ccs, cc)
		}
		for _, cc := range ccs {
			expectRead(t, cc, OpText, []byte("x"))
			expectRead(t, cc, OpText, []byte("yy"))
			expectRead(t, cc, OpText, bytes.Repeat([]byte("z"), 70000))
			_ = cc.Close(StatusNormalClosure, "")
		}
	})
}

// TestPreparedBatch writes several Prepared values with one call: more
// than one gather list's worth, mixed with plain writes; then a batch the
// socket takes only part of (the rest is queued by reference) and one
// queued behind it. The peer reads every message once, in order.
func TestPreparedBatch(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{MaxQueueBytes: 64 << 20}, fallback, nil)
		rc, c := openConn(t, ts)
		var batch []*Prepared
		for i := range maxPreparedBatch + 5 {
			batch = append(batch, NewPrepared(OpText, []byte(fmt.Sprintf("b%d", i)), []byte(fmt.Sprintf("b%d'", i))))
		}
		big := bytes.Repeat([]byte("P"), 4<<20)
		if err := c.WriteMessage(OpText, []byte("before")); err != nil {
			t.Fatal(err)
		}
		if err := c.WritePreparedBatch(batch); err != nil {
			t.Fatal(err)
		}
		// Written directly into an empty queue: the socket takes part of
		// the big one, the rest of it and the next one are queued.
		if err := c.WritePreparedBatch([]*Prepared{NewPrepared(OpBinary, big), NewPrepared(OpText, []byte("after big"))}); err != nil {
			t.Fatal(err)
		}
		if c.Buffered() == 0 {
			t.Fatal("a 4 MiB message unread by the peer left nothing queued; the queued-batch case is not exercised")
		}
		if err := c.WritePreparedBatch(batch[:3]); err != nil {
			t.Fatal(err)
		}
		rc.expectMessage(OpText, []byte("before"))
		for i := range batch {
			rc.expectMessage(OpText, []byte(fmt.Sprintf("b%d", i)))
			rc.expectMessage(OpText, []byte(fmt.Sprintf("b%d'", i)))
		}
		rc.expectMessage(OpBinary, big)
		rc.expectMessage(OpText, []byte("after big"))
		for i := range 3 {
			rc.expectMessage(OpText, []byte(fmt.Sprintf("b%d", i)))
			rc.expectMessage(OpText, []byte(fmt.Sprintf("b%d'", i)))
		}
		if err := c.Close(StatusNormalClosure, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.WritePreparedBatch(batch); !errors.Is(err, ErrClosed) {
			t.Fatalf("WritePreparedBatch after Close: %v, want ErrClosed", err)
		}
	})
}

// TestConcurrentWriters writes from many goroutines to one Conn while it
// echoes; -race checks the locking, the client checks every message.
func TestConcurrentWriters(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		rc, c := openConn(t, ts)
		var wg sync.WaitGroup
		const writers, each = 4, 50
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					_ = c.WriteMessage(OpText, []byte(fmt.Sprintf("%d-%d", w, i)))
				}
			}()
		}
		seen := map[string]bool{}
		next := make([]int, writers)
		for i := 0; i < writers*each; i++ {
			f := rc.mustFrame()
			var w, k int
			fmt.Sscanf(string(f.payload), "%d-%d", &w, &k)
			if k != next[w] || seen[string(f.payload)] {
				t.Fatalf("writer %d: got %d, want %d", w, k, next[w])
			}
			next[w]++
			seen[string(f.payload)] = true
		}
		wg.Wait()
	})
}

func TestUserData(t *testing.T) {
	ts := newTestServer(t, Config{}, false, nil)
	_, c := openConn(t, ts)
	if c.UserData() != nil {
		t.Fatal("UserData not nil")
	}
	c.SetUserData(42)
	if c.UserData() != 42 {
		t.Fatal("SetUserData lost")
	}
}

// TestShutdown: every connection gets the code, Shutdown returns once the
// handshakes are done, Len drops to 0.
func TestShutdown(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		var ccs []*ClientConn
		var addrs []string
		for i := 0; i < 3; i++ {
			cc, _ := openClient(t, ts)
			ccs = append(ccs, cc)
			addrs = append(addrs, cc.LocalAddr().String())
		}
		if ts.srv.Len() != 3 {
			t.Fatalf("Len %d", ts.srv.Len())
		}
		done := make(chan error, 1)
		go func() { done <- ts.srv.Shutdown(context.Background(), StatusGoingAway, "bye") }()
		for _, cc := range ccs {
			// ReadMessage answers the close frame and waits for the
			// server to close TCP first.
			_, _, err := cc.ReadMessage(context.Background())
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != StatusGoingAway || ce.Reason != "bye" {
				t.Fatalf("client read %v, want 1001 bye", err)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitLong):
			t.Fatal("Shutdown did not return")
		}
		if ts.srv.Len() != 0 {
			t.Fatalf("Len %d after Shutdown", ts.srv.Len())
		}
		for _, addr := range addrs {
			if ce := ts.h.closeOfAddr(t, addr); ce.Code != StatusGoingAway || ce.Reason != "bye" {
				t.Fatalf("OnClose %+v", ce)
			}
		}
		checkNoGoroutines(t)
	})
}

func TestShutdownDeadline(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		rc, _ := openConn(t, ts) // never answers the close frame
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := ts.srv.Shutdown(ctx, StatusGoingAway, ""); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if ts.srv.Len() != 0 {
			t.Fatalf("Len %d", ts.srv.Len())
		}
		ts.h.closeOf(t, rc)
		checkNoGoroutines(t)
	})
}

func TestClose(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		rc1, _ := openConn(t, ts)
		rc2, _ := openConn(t, ts)
		if err := ts.srv.Close(); err != nil {
			t.Fatal(err)
		}
		if ts.srv.Len() != 0 {
			t.Fatalf("Len %d", ts.srv.Len())
		}
		for _, rc := range []*rawClient{rc1, rc2} {
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusAbnormalClosure {
				t.Fatalf("OnClose %+v", ce)
			}
		}
		checkNoGoroutines(t)
	})
}

// TestNoGoroutinePerConnLeft: with the goroutine driver, an idle
// connection has its reader and no writer (the writer runs only while
// output is queued), and a closed connection's goroutines exit while the
// server keeps running; with epoll there are none to begin with.
func TestNoGoroutinePerConnLeft(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{}, fallback, nil)
		var rcs []*rawClient
		for i := 0; i < 5; i++ {
			rc, _ := openConn(t, ts)
			rcs = append(rcs, rc)
		}
		want := map[bool]int{false: 0, true: 5}[fallback]
		perConn := 0
		// The goroutines start right after OnOpen: let them settle.
		for deadline := time.Now().Add(waitLong); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if perConn = len(engineGoroutines("ws.(*Conn).fbReader", "ws.(*Conn).fbWriter")); perConn == want {
				break
			}
		}
		if perConn != want {
			t.Fatalf("%d per-connection goroutines, want %d", perConn, want)
		}
		for i, rc := range rcs {
			if i%2 == 0 {
				rc.write(closeF(closeBody(1000, "")))
				rc.expectClose(1000)
			} else {
				rc.nc.Close()
			}
			ts.h.closeOf(t, rc)
		}
		checkNoGoroutines(t, "ws.(*Conn).fbReader", "ws.(*Conn).fbWriter", "ws.(*Conn).finalize")
	})
}

// TestOnCloseOnceAndOrder hammers connections that close from both ends at
// once and checks the Handler contract: open before messages, one close,
// last.
func TestOnCloseOnceAndOrder(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{CloseTimeout: time.Second}, fallback, nil)
		for i := 0; i < 20; i++ {
			rc, c := openConn(t, ts)
			rc.write(text("m"))
			go c.Close(StatusNormalClosure, "")
			rc.write(closeF(closeBody(1000, "")))
			go rc.nc.Close()
			ts.h.closeOf(t, rc)
		}
		if err := ts.srv.Close(); err != nil {
			t.Fatal(err)
		}
		// Replay the event log per connection.
		state := map[*Conn]string{}
	drain:
		for {
			select {
			case ev := <-ts.h.events:
				switch ev.kind {
				case "open":
					state[ev.c] = "open"
				case "message":
					if state[ev.c] != "open" {
						t.Fatalf("message in state %q", state[ev.c])
					}
				case "close":
					if state[ev.c] == "closed" {
						t.Fatal("OnClose twice")
					}
					state[ev.c] = "closed"
				}
			default:
				break drain
			}
		}
	})
}

// TestOnCloseWithoutPeerFIN: once the closing handshake is done (or the
// connection failed), OnClose comes at once even if the peer keeps its TCP
// socket open (gorilla clients do until the application closes them);
// only the socket lingers, bounded by CloseTimeout.
func TestOnCloseWithoutPeerFIN(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		// With a CloseTimeout far beyond waitLong, a late OnClose fails.
		ts := newTestServer(t, Config{CloseTimeout: time.Hour}, fallback, nil)
		t.Run("server initiated", func(t *testing.T) {
			rc, c := openConn(t, ts)
			_ = c.Close(4000, "bye")
			if f := rc.mustFrame(); f.op != OpClose {
				t.Fatalf("got %v", f.op)
			}
			rc.write(closeF(closeBody(4000, "bye")))
			if ce := ts.h.closeOf(t, rc); ce.Code != 4000 {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("client initiated", func(t *testing.T) {
			rc, _ := openConn(t, ts)
			rc.write(closeF(closeBody(1000, "")))
			if f := rc.mustFrame(); f.op != OpClose {
				t.Fatalf("got %v", f.op)
			}
			if ce := ts.h.closeOf(t, rc); ce.Code != 1000 {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		t.Run("protocol error", func(t *testing.T) {
			rc, _ := openConn(t, ts)
			rc.write(frame(finBit|byte(OpText), []byte("x"), true))
			if ce := ts.h.closeOf(t, rc); ce.Code != StatusProtocolError {
				t.Fatalf("OnClose %+v", ce)
			}
		})
		if n := ts.srv.Len(); n != 0 {
			t.Fatalf("Len %d", n)
		}
	})
}

// TestLenDuringOnClose: a connection no longer counts in Len once its
// OnClose has begun, so whoever learned of OnClose sees it gone (the race
// behind TestOnCloseWithoutPeerFIN's occasional "Len 1": Len used to drop
// only after OnClose returned); Shutdown still waits for OnClose to return.
func TestLenDuringOnClose(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		h := newRecHandler()
		gate := make(chan struct{})
		var returned atomic.Bool
		h.onClose = func(*Conn) {
			<-gate
			returned.Store(true)
		}
		ts := newTestServer(t, Config{}, fallback, h)
		rc, _ := openConn(t, ts)
		if n := ts.srv.Len(); n != 1 {
			t.Fatalf("Len %d with one connection", n)
		}
		rc.write(closeF(closeBody(1000, "")))
		ts.h.closeOf(t, rc) // OnClose is now under way, held by gate
		if n := ts.srv.Len(); n != 0 {
			close(gate)
			t.Fatalf("Len %d while OnClose runs, want 0", n)
		}
		done := make(chan error, 1)
		go func() { done <- ts.srv.Shutdown(context.Background(), StatusGoingAway, "") }()
		close(gate)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitLong):
			t.Fatal("Shutdown did not return")
		}
		if !returned.Load() {
			t.Fatal("Shutdown returned before OnClose did")
		}
	})
}

// TestMessageOverQueueBound: one message larger than MaxQueueBytes still
// reaches a peer that reads; the bound is on data queued behind it.
func TestMessageOverQueueBound(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		ts := newTestServer(t, Config{MaxQueueBytes: 64 << 10}, fallback, nil)
		rc, _ := openConn(t, ts)
		msg := bytes.Repeat([]byte("q"), 8<<20)
		go func() { // the echo comes back while we are still sending
			_ = rc.nc.SetWriteDeadline(time.Now().Add(waitLong))
			_, _ = rc.nc.Write(bin(msg))
		}()
		rc.expectMessage(OpBinary, msg)
	})
}

// TestPausedNotTimedOut: keepalive and idle timers do not close a
// connection whose reading the application paused.
func TestPausedNotTimedOut(t *testing.T) {
	forDrivers(t, func(t *testing.T, fallback bool) {
		cfg := Config{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond, IdleTimeout: 150 * time.Millisecond, CloseTimeout: 200 * time.Millisecond}
		ts := newTestServer(t, cfg, fallback, nil)
		rc, c := openConn(t, ts)
		c.PauseReading()
		time.Sleep(500 * time.Millisecond) // several timeouts long
		if ts.srv.Len() != 1 {
			t.Fatal("paused connection was closed")
		}
		c.ResumeReading()
		// Now silent and unpaused: the timers apply again.
		ts.h.closeOf(t, rc)
	})
}
