package ws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// echo sends every message back; handlers run on the engine's event loops
// and must not block.
type echo struct{}

func (echo) OnOpen(c *ws.Conn) {}

func (echo) OnMessage(c *ws.Conn, op ws.Opcode, data []byte) {
	_ = c.WriteMessage(op, data) // never blocks: queued if the socket is full
}

func (echo) OnClose(c *ws.Conn, err error) {}

// ExampleServer runs an echo server and talks to it with a gorilla client.
func ExampleServer() {
	srv, err := ws.NewServer(echo{}, ws.Config{MaxMessageBytes: 1 << 20})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv) // or mux.Handle("/ws", srv) next to pages
	defer hs.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	_ = conn.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, msg, _ := conn.ReadMessage()
	fmt.Println(string(msg))

	// Shutdown sends 1001 to every connection and waits for the replies.
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil { // gorilla answers the close
				conn.Close()
				return
			}
		}
	}()
	fmt.Println(srv.Shutdown(context.Background(), ws.StatusGoingAway, "bye"), srv.Len())
	// Output:
	// hello
	// <nil> 0
}
