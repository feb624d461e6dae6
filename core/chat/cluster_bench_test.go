package chat_test

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// BenchmarkPostCluster is the message path's cost per message on a single
// node with an in-memory History and on a cluster node of chattest's
// in-memory Broker (issue 15), the log being free: Host.Action posts
// b.N messages, a moonchat.v1 and a plain-text member read them all. The
// difference is what the cluster path adds: the publish, the consumer's
// hop and replica write, the room's opDeliver and its own batch.
func BenchmarkPostCluster(b *testing.B) {
	for _, broker := range []bool{false, true} {
		name := "single"
		if broker {
			name = "broker"
		}
		b.Run(name, func(b *testing.B) { benchmarkPostCluster(b, broker) })
	}
}

func benchmarkPostCluster(b *testing.B, broker bool) {
	cfg := chat.Config{Logger: slog.New(slog.DiscardHandler)}
	var ts *chattest.Server
	if broker {
		ts, _ = chattest.StartNode(b, chattest.NewBroker(), cfg, trivialHooks{}, nil)
	} else {
		ts = chattest.Start(b, cfg, trivialHooks{}, chattest.NewHistory())
	}
	const text = "benchmark message"
	want := int64(b.N)
	done := make(chan struct{}, 2)
	read := func(c *websocket.Conn, isMsg func([]byte) bool) {
		buf := make([]byte, 256)
		var got int64
		for {
			_, r, err := c.NextReader()
			if err != nil {
				return
			}
			n, _ := io.ReadFull(r, buf)
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			if isMsg(buf[:n]) {
				if got++; got == want {
					done <- struct{}{}
				}
			}
		}
	}
	for _, p := range []struct{ path, proto string }{{"/chat/bench?name=jay", chat.SubprotocolJSON}, {"/chat/bench?name=pat", ""}} {
		c, _, err := ts.TryDial(p.path, p.proto)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if p.proto != "" {
			go read(c, func(f []byte) bool { return bytes.HasPrefix(f, []byte(`{"type":"message"`)) })
		} else {
			go read(c, func(f []byte) bool { return bytes.HasSuffix(f, []byte(" "+text)) })
		}
	}
	var id uint64
	chattest.Eventually(b, "both joined", func() bool {
		us := ts.Chat.Users("bench")
		if len(us) == 2 {
			id = us[0].SessionID
		}
		return len(us) == 2
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := ts.Chat.Action(id, text); err != nil {
			b.Fatal(err)
		}
	}
	for range 2 {
		select {
		case <-done:
		case <-time.After(chattest.Wait):
			b.Fatal("messages not delivered")
		}
	}
}
