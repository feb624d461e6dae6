package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/ws"
)

// clientFrame is a frame the client wrote.
type clientFrame struct {
	op ws.Opcode
	p  []byte
}

// feedPipe returns a connection for feeding the parser directly (its
// writes go to a real in-memory pipe) and the frames it writes.
func feedPipe(t *testing.T) (newConn func(max int) *Conn, written <-chan clientFrame) {
	t.Helper()
	cli, srv := net.Pipe()
	frames := make(chan clientFrame, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(srv)
		for {
			if _, err := br.Peek(2); err != nil {
				return
			}
			op, p := readClientFrame(t, br)
			frames <- clientFrame{op, p}
		}
	}()
	t.Cleanup(func() { cli.Close(); srv.Close(); <-done })
	return func(max int) *Conn { return &Conn{nc: cli, max: max, fd: -1} }, frames
}

func expectFrame(t *testing.T, written <-chan clientFrame, op ws.Opcode, p []byte) {
	t.Helper()
	select {
	case f := <-written:
		if f.op != op || !bytes.Equal(f.p, p) {
			t.Fatalf("client wrote op %d %q, want op %d %q", f.op, f.p, op, p)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("client wrote nothing, want op %d %q", op, p)
	}
}

// msgLog collects delivered messages (copied: data is only valid during
// the call).
type msgLog []string

func (l *msgLog) deliver(op ws.Opcode, data []byte) {
	*l = append(*l, fmt.Sprintf("%d:%s", op, data))
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// TestFeedSplitAnywhere feeds a stream with every length encoding, a
// fragmented message with a ping inside, a pong and an empty message,
// split in two at every byte boundary and in chunks of every small size:
// the messages must come out the same, and the ping answered each time.
func TestFeedSplitAnywhere(t *testing.T) {
	mid := bytes.Repeat([]byte("m"), 300)
	big := bytes.Repeat([]byte("0123456789"), 7000) // 64-bit length
	small := cat(
		serverFrame(true, ws.OpText, []byte("hello")),
		serverFrame(true, ws.OpBinary, mid),
		serverFrame(false, ws.OpText, []byte("frag-")),
		serverFrame(true, ws.OpPing, []byte("are you there")),
		serverFrame(false, ws.OpContinuation, []byte("men-")),
		serverFrame(true, ws.OpContinuation, []byte("ted")),
		serverFrame(true, ws.OpPong, []byte("x")),
		serverFrame(true, ws.OpText, nil),
		serverFrame(true, ws.OpText, []byte("last")),
	)
	wantSmall := []string{"1:hello", "2:" + string(mid), "1:frag-men-ted", "1:", "1:last"}
	withBig := cat(serverFrame(true, ws.OpText, []byte("a")), serverFrame(true, ws.OpText, big), small)
	wantBig := append([]string{"1:a", "1:" + string(big)}, wantSmall...)

	newConn, written := feedPipe(t)
	check := func(t *testing.T, name string, stream []byte, want []string, chunks [][]byte) {
		t.Helper()
		c := newConn(1 << 20)
		var got msgLog
		for _, ch := range chunks {
			if err := c.feed(ch, got.deliver); err != nil {
				t.Fatalf("%s: feed: %v", name, err)
			}
		}
		if len(c.pend) != 0 || c.fop != 0 || c.fmsg != nil {
			t.Fatalf("%s: state left after the stream: %d pending bytes, fop %d", name, len(c.pend), c.fop)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: message %d = %.40q (%d bytes), want %.40q (%d bytes)", name, i, got[i], len(got[i]), want[i], len(want[i]))
			}
		}
		expectFrame(t, written, ws.OpPong, []byte("are you there"))
	}
	for i := 0; i <= len(small); i++ {
		check(t, fmt.Sprintf("split at %d", i), small, wantSmall, [][]byte{small[:i], small[i:]})
	}
	// The big frame: every boundary in its header and the frames around
	// it, a sample inside its payload.
	for i := 0; i <= len(withBig); i++ {
		if i > 30 && i < len(withBig)-len(small)-30 && i%997 != 0 {
			continue
		}
		check(t, fmt.Sprintf("big, split at %d", i), withBig, wantBig, [][]byte{withBig[:i], withBig[i:]})
	}
	for size := 1; size <= 17; size++ {
		var chunks [][]byte
		for s := withBig; len(s) > 0; s = s[min(size, len(s)):] {
			chunks = append(chunks, s[:min(size, len(s))])
		}
		check(t, fmt.Sprintf("chunks of %d", size), withBig, wantBig, chunks)
	}
	// All in one read: several frames parsed in place.
	check(t, "one read", withBig, wantBig, [][]byte{withBig})
}

// TestFeedErrors checks the parser refuses what ReadMessage refuses, fed
// whole or a byte at a time.
func TestFeedErrors(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, ErrProtocol},
		{"rsv", []byte{0xC1, 0x01, 'x'}, ErrProtocol},
		{"lone continuation", serverFrame(true, ws.OpContinuation, []byte("x")), ErrProtocol},
		{"long ping", serverFrame(true, ws.OpPing, bytes.Repeat([]byte("p"), 126)), ErrProtocol},
		{"fragmented ping", serverFrame(false, ws.OpPing, nil), ErrProtocol},
		{"too big", serverFrame(true, ws.OpText, make([]byte, 1001)), ErrMessageTooBig},
		{"too big in fragments", cat(serverFrame(false, ws.OpText, make([]byte, 600)),
			serverFrame(true, ws.OpContinuation, make([]byte, 401))), ErrMessageTooBig},
		{"reserved opcode", serverFrame(true, 3, nil), ErrProtocol},
		{"reserved control opcode", serverFrame(true, 11, nil), ErrProtocol},
		{"message inside a fragmented one", cat(serverFrame(false, ws.OpText, []byte("a")),
			serverFrame(true, ws.OpText, []byte("b"))), ErrProtocol},
		{"close of one byte", serverFrame(true, ws.OpClose, []byte{3}), ErrProtocol},
		{"close reason not UTF-8", serverFrame(true, ws.OpClose, []byte{3, 0xe8, 0xff}), ErrProtocol},
	}
	newConn, _ := feedPipe(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ReadMessage must agree: this table is the parser's contract.
			c := newConn(1000)
			c.br = bufio.NewReader(bytes.NewReader(tt.stream))
			if _, _, err := c.ReadMessage(); !errors.Is(err, tt.want) {
				t.Fatalf("ReadMessage error = %v, want %v", err, tt.want)
			}
			if err := newConn(1000).feed(tt.stream, func(ws.Opcode, []byte) {}); !errors.Is(err, tt.want) {
				t.Fatalf("feed error = %v, want %v", err, tt.want)
			}
			c = newConn(1000)
			var err error
			for i := 0; i < len(tt.stream) && err == nil; i++ {
				err = c.feed(tt.stream[i:i+1], func(ws.Opcode, []byte) {})
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("feed byte by byte: error = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestFeedClose checks a close frame ends the stream as a *CloseError, is
// answered with the same code, and that nothing is parsed after it.
func TestFeedClose(t *testing.T) {
	newConn, written := feedPipe(t)
	c := newConn(1000)
	var got msgLog
	stream := cat(serverFrame(true, ws.OpText, []byte("before")),
		serverFrame(true, ws.OpClose, append([]byte{0x03, 0xe9}, "going away"...)),
		serverFrame(true, ws.OpText, []byte("after")))
	err := c.feed(stream, got.deliver)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "going away" {
		t.Fatalf("feed error = %v, want close 1001", err)
	}
	expectFrame(t, written, ws.OpClose, []byte{0x03, 0xe9})
	if err := c.feed(serverFrame(true, ws.OpText, []byte("later")), got.deliver); !errors.As(err, &ce) {
		t.Fatalf("feed after close = %v", err)
	}
	if len(got) != 1 || got[0] != "1:before" {
		t.Fatalf("delivered %q, want only the message before the close", got)
	}
	if err := c.WriteText([]byte("late")); !errors.Is(err, ErrConnClosed) {
		t.Errorf("write after close = %v, want ErrConnClosed", err)
	}
}
