package chat_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// BenchmarkDirect measures direct messages end to end over loopback: one
// account writes to another (one connection each, moonchat.v1, the
// in-memory History), at most 32 in flight; ns/op is one message from
// the sender's frame to the recipient's read (hook-less: Append, the
// hand-off op and the write).
func BenchmarkDirect(b *testing.B) { benchmarkDirect(b, 0) }

// BenchmarkDirect1000Idle is BenchmarkDirect with 1000 other guests
// connected in another room: delivery looks up the recipient's
// connections in the account index, so it costs the same.
func BenchmarkDirect1000Idle(b *testing.B) { benchmarkDirect(b, 1000) }

func benchmarkDirect(b *testing.B, idle int) {
	cfg := chat.Config{Authenticator: authFunc(memberAuth)} // no flood limit
	ts := chattest.Start(b, cfg, nil, chattest.NewHistory())
	for i := range idle {
		ts.Dial(b, "/chat/idle?name=g"+strconv.Itoa(i), "") // closed when the benchmark ends
	}
	alice := joinedJSONB(b, ts, "/chat/lobby?as=a1&n=alice")
	bob := joinedJSONB(b, ts, "/chat/dev?as=b1&n=bob")
	chattest.Eventually(b, "bob in dev", func() bool { return len(ts.Names("dev")) == 1 })
	// The sender's own echo is read off by a goroutine so that its
	// connection never fills up.
	go func() {
		for {
			if _, _, err := alice.Conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	const window = 32
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for got := 0; got < b.N; {
			_, data, err := bob.Conn.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			if strings.HasPrefix(string(data), `{"type":"direct"`) {
				got++
				credit <- struct{}{}
			}
		}
		done <- nil
	}()
	frame := []byte(`{"type":"direct","to":"bob","text":"hello there, a direct message"}`)
	for range b.N {
		<-credit
		if err := alice.Conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// joinedJSONB is joinedJSON for a benchmark.
func joinedJSONB(b *testing.B, ts *chattest.Server, path string) *chattest.Client {
	b.Helper()
	c := ts.Dial(b, path, chat.SubprotocolJSON)
	c.ExpectEvent("welcome")
	return c
}
