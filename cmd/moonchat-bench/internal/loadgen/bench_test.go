package loadgen

import (
	"context"
	"encoding/binary"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/moonchat/moonchat/core/ws"
)

// serverFrames returns a 64 KiB read's worth of unmasked server text
// frames of size bytes each, as the epoll loop hands them to feed.
func serverFrames(size int) []byte {
	var b []byte
	p := make([]byte, size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	for len(b)+size+4 <= readBufSize {
		b = append(b, 0x81)
		switch {
		case size <= 125:
			b = append(b, byte(size))
		default:
			b = append(b, 126)
			b = binary.BigEndian.AppendUint16(b, uint16(size))
		}
		b = append(b, p...)
	}
	return b
}

// BenchmarkFeed measures the epoll receive path's parser on a full read
// buffer of broadcast-sized messages (the hot loop of a load run).
func BenchmarkFeed(b *testing.B) {
	for _, size := range []int{64, 1024} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			buf := serverFrames(size)
			c := &Conn{max: 1 << 20, fd: -1}
			n := 0
			deliver := func(ws.Opcode, []byte) { n++ }
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if err := c.feed(buf, deliver); err != nil {
					b.Fatal(err)
				}
			}
			if n == 0 {
				b.Fatal("nothing delivered")
			}
		})
	}
}

// BenchmarkDial measures one client's dial and opening handshake, then
// its close (what connecting 10,000 clients costs the tool per client),
// against core/ws's bare server so that only the client side varies.
func BenchmarkDial(b *testing.B) {
	srv, err := ws.NewServer(nopHandler{}, ws.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() { ts.Close(); _ = srv.Close() }()
	url := wsURL(ts, "/")
	ctx := context.Background()
	for b.Loop() {
		c, err := Dial(ctx, url, DialOptions{})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// nopHandler accepts connections and ignores what they send.
type nopHandler struct{}

func (nopHandler) OnOpen(*ws.Conn)                       {}
func (nopHandler) OnMessage(*ws.Conn, ws.Opcode, []byte) {}
func (nopHandler) OnClose(*ws.Conn, error)               {}
