//go:build linux

package loadgen

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// epollClient dials url and hands the connection to a reader pool of its
// own; messages and the end of reading come out of the channels.
func epollClient(t *testing.T, url string, opts DialOptions, wantBuffered bool) (*Conn, <-chan string, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if wantBuffered && len(c.readAhead()) == 0 {
		t.Fatal("no frame was read ahead with the handshake; the test does not exercise that path")
	}
	pool, err := newReaderPool(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.stop)
	msgs := make(chan string, 100)
	ended := make(chan error, 1)
	err = pool.add(c, func(op ws.Opcode, data []byte) { msgs <- string(data) }, func(err error) { ended <- err })
	if err != nil {
		t.Fatal(err)
	}
	return c, msgs, ended
}

func expectMsgs(t *testing.T, msgs <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-msgs:
			if got != w {
				t.Fatalf("message %q, want %q", got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no message, want %q", w)
		}
	}
}

func expectEnd(t *testing.T, ended <-chan error) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("reading did not end")
		return nil
	}
}

// TestEpollReader plays a server that sends frames in the same write as
// its 101 (so they sit in the handshake's bufio.Reader), then a message
// split mid-header across writes with a ping inside, several frames in
// one write, and a close frame: the epoll path must deliver everything in
// order, answer the ping and the close, and report the close.
func TestEpollReader(t *testing.T) {
	step := make(chan struct{})
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		req := readRequest(t, br)
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			ws.AcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		c.Write(cat([]byte(resp), serverFrame(true, ws.OpText, []byte("early-1")),
			serverFrame(true, ws.OpText, []byte("early-2")), serverFrame(false, ws.OpText, []byte("sp"))[:3]))
		<-step
		rest := cat(serverFrame(false, ws.OpText, []byte("sp"))[3:],
			serverFrame(true, ws.OpPing, []byte("ping!")),
			serverFrame(true, ws.OpContinuation, []byte("lit")))
		for _, part := range [][]byte{rest[:1], rest[1:5], rest[5:]} {
			c.Write(part)
			time.Sleep(20 * time.Millisecond) // separate reads, most likely
		}
		if op, p := readClientFrame(t, br); op != ws.OpPong || string(p) != "ping!" {
			t.Errorf("pong: op %d %q", op, p)
		}
		c.Write(cat(serverFrame(true, ws.OpText, []byte("a")), serverFrame(true, ws.OpText, []byte("b")),
			serverFrame(true, ws.OpText, []byte("c")), serverFrame(true, ws.OpClose, append([]byte{0x03, 0xe9}, "bye"...))))
		if op, p := readClientFrame(t, br); op != ws.OpClose || string(p) != "\x03\xe9" {
			t.Errorf("close reply: op %d %q", op, p)
		}
		io.Copy(io.Discard, br)
	})
	c, msgs, ended := epollClient(t, url, DialOptions{}, true)
	expectMsgs(t, msgs, "early-1", "early-2")
	close(step)
	expectMsgs(t, msgs, "split", "a", "b", "c")
	var ce *CloseError
	if err := expectEnd(t, ended); !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "bye" {
		t.Fatalf("end = %v, want the server's close 1001", err)
	}
	if err := c.WriteText([]byte("late")); !errors.Is(err, ErrConnClosed) {
		t.Errorf("write after the end = %v, want ErrConnClosed", err)
	}
}

// TestEpollReaderErrors checks protocol errors and an oversized message
// end reading on the epoll path too.
func TestEpollReaderErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, ErrProtocol},
		{"lone continuation", serverFrame(true, ws.OpContinuation, []byte("x")), ErrProtocol},
		{"too big", serverFrame(true, ws.OpText, make([]byte, 2000)), ErrMessageTooBig},
		{"end of stream", nil, io.EOF},
		{"end inside a frame", serverFrame(true, ws.OpText, []byte("abc"))[:3], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := make(chan struct{})
			url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				req := readRequest(t, br)
				answer(c, ws.AcceptKey(req.Header.Get("Sec-WebSocket-Key")), "")
				<-ready
				c.Write(tt.frame)
			})
			_, _, ended := epollClient(t, url, DialOptions{MaxMessageBytes: 1000}, false)
			close(ready)
			if err := expectEnd(t, ended); !errors.Is(err, tt.want) {
				t.Fatalf("end = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestEpollReaderShutdown checks both ways reading ends on our side: Close
// (the loop sees the shut-down socket) and stopping the pool.
func TestEpollReaderShutdown(t *testing.T) {
	ts := startChat(t)
	c, _, ended := epollClient(t, ts+"/chat/shut?name=a", DialOptions{}, false)
	c.Close()
	if err := expectEnd(t, ended); err == nil {
		t.Fatal("no error at the end")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c2, err := Dial(ctx, ts+"/chat/shut?name=b", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := newReaderPool(1)
	if err != nil {
		t.Fatal(err)
	}
	ended2 := make(chan error, 1)
	if err := pool.add(c2, func(ws.Opcode, []byte) {}, func(err error) { ended2 <- err }); err != nil {
		t.Fatal(err)
	}
	pool.stop()
	if err := expectEnd(t, ended2); !errors.Is(err, errReaderStopped) {
		t.Fatalf("end = %v, want errReaderStopped", err)
	}
	if err := pool.add(c2, func(ws.Opcode, []byte) {}, func(error) {}); err == nil {
		t.Error("a detached connection was added twice")
	}
}
