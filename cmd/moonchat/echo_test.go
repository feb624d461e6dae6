package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestEcho runs `moonchat echo` in-process and checks that text and binary
// messages come back unchanged with their opcode, that an oversized message
// is refused with 1009, and that cancelling the context stops the command.
func TestEcho(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"echo", "-listen", "127.0.0.1:0", "-max-message", "1024"}, &bytes.Buffer{}, &stderr)
	}()

	addrRE := regexp.MustCompile(`msg="echo server listening" addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo server did not log its address; log:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/any/path", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, m := range []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("héllo")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xff}},
		{websocket.TextMessage, nil},
		{websocket.BinaryMessage, bytes.Repeat([]byte{7}, 1024)},
	} {
		if err := c.WriteMessage(m.typ, m.data); err != nil {
			t.Fatalf("write: %v", err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read echo: %v", err)
		}
		if typ != m.typ || !bytes.Equal(got, m.data) {
			t.Errorf("echo of %d/%q = %d/%q", m.typ, m.data, typ, got)
		}
	}

	// One byte over -max-message: the engine closes with 1009.
	if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 1025)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("oversized message: got %v, want close 1009", err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("echo exited %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("echo did not stop after its context was cancelled")
	}
}

// TestEchoCompress runs `moonchat echo -compress` and checks that a client
// offering permessage-deflate (gorilla/websocket, which then compresses
// what it sends) gets the extension and its compressed messages echoed,
// text and binary, a small one and one of several frames' worth; and
// that without -compress the offer is declined.
func TestEchoCompress(t *testing.T) {
	for _, compress := range []bool{true, false} {
		args := []string{"echo", "-listen", "127.0.0.1:0"}
		if compress {
			args = append(args, "-compress")
		}
		addr, stop := startEcho(t, args)
		d := websocket.Dialer{EnableCompression: true}
		c, resp, err := d.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if got := strings.HasPrefix(ext, "permessage-deflate"); got != compress {
			t.Fatalf("-compress=%v: Sec-WebSocket-Extensions %q", compress, ext)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for _, m := range []struct {
			typ  int
			data []byte
		}{
			{websocket.TextMessage, []byte("héllo héllo héllo héllo héllo")},
			{websocket.BinaryMessage, bytes.Repeat([]byte("moonchat "), 100000)},
			{websocket.TextMessage, []byte("x")},
		} {
			if err := c.WriteMessage(m.typ, m.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			typ, got, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read echo: %v", err)
			}
			if typ != m.typ || !bytes.Equal(got, m.data) {
				t.Errorf("echo of %d bytes came back as %d/%d bytes", len(m.data), typ, len(got))
			}
		}
		c.Close()
		if code := stop(); code != 0 {
			t.Errorf("echo exited %d", code)
		}
	}
}

// startEcho runs `moonchat args...` (an echo command) in-process and
// returns the address it listens on and a function that stops it and
// returns its exit code.
func startEcho(t *testing.T, args []string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &bytes.Buffer{}, &stderr) }()
	t.Cleanup(cancel)
	addrRE := regexp.MustCompile(`msg="echo server listening" addr=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], func() int {
				cancel()
				select {
				case code := <-done:
					return code
				case <-time.After(10 * time.Second):
					t.Fatal("echo did not stop after its context was cancelled")
					return -1
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo server did not log its address; log:\n%s", stderr.String())
		}
	}
}
