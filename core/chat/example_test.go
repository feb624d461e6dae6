package chat_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// A chat server without scripts or history: plain chat on one port. With a
// store and scripts, pass them instead of the nils (cmd/moonchat does).
func ExampleNew() {
	// Every setting means what it says: chat.Config has no defaults (a
	// zero limit is an error, a zero FloodRate or Replay means off).
	srv, err := chat.New(chat.Config{
		DefaultRoom: "lobby", MaxConnections: 10000, MaxRooms: 1000, MaxNameLength: 24,
		MaxTextBytes: 4096, APILimit: 500, Replay: 50, FloodRate: 10, FloodBurst: 20,
	}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: srv}
	go func() { _ = hs.ListenAndServe() }()

	// ... later, on SIGTERM: stop accepting, let rooms finish their batch,
	// close every client with 1001.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
}
