package chat_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/coder/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// The server works with a second, independent client implementation.
func TestCoderWebSocketClient(t *testing.T) {
	ts := chattest.Start(t, chat.Config{}, nil, chattest.NewHistory())
	ctx, cancel := context.WithTimeout(context.Background(), chattest.Wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ts.WS+"/chat/coder?name=cody", &websocket.DialOptions{Subprotocols: []string{"x-unknown", chat.SubprotocolJSON}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != chat.SubprotocolJSON {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	read := func() chattest.Event {
		t.Helper()
		typ, data, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText {
			t.Fatalf("read: %v %v", typ, err)
		}
		var e chattest.Event
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		return e
	}
	if e := read(); e.Str("type") != "welcome" || e.Str("user") != "cody" {
		t.Fatalf("%v", e)
	}
	for e := read(); e.Str("type") != "system"; e = read() {
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"message","text":"hé"}`)); err != nil {
		t.Fatal(err)
	}
	if e := read(); e.Str("type") != "message" || e.Str("text") != "hé" || e.Num("id") != 1 {
		t.Fatalf("%v", e)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}
