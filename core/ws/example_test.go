package ws_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

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

// ExampleDial is the client side: it dials the echo server, offers a
// subprotocol, sends a message, reads the echo and closes cleanly.
func ExampleDial() {
	srv, err := ws.NewServer(echo{}, ws.Config{Subprotocols: []string{"chat"}})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/room", &ws.DialOptions{
		Subprotocols: []string{"chat"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer example"}},
	})
	if err != nil {
		panic(err)
	}
	_ = c.WriteMessage(ctx, ws.OpText, []byte("hello"))
	op, msg, err := c.ReadMessage(ctx)
	fmt.Println(c.Subprotocol(), op, string(msg), err)
	fmt.Println(c.Close(ws.StatusNormalClosure, "bye"))
	_ = srv.Close()
	// Output:
	// chat text hello <nil>
	// <nil>
}
