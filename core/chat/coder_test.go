package chat

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/coder/websocket"
)

// The server works with a second, independent client implementation.
func TestCoderWebSocketClient(t *testing.T) {
	ts := startServer(t, Config{}, nil, newMemHistory())
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ts.ws+"/chat/coder?name=cody", &websocket.DialOptions{Subprotocols: []string{"x-unknown", SubprotocolJSON}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != SubprotocolJSON {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	read := func() event {
		t.Helper()
		typ, data, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText {
			t.Fatalf("read: %v %v", typ, err)
		}
		var e event
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		return e
	}
	if e := read(); e.str("type") != "welcome" || e.str("user") != "cody" {
		t.Fatalf("%v", e)
	}
	for e := read(); e.str("type") != "system"; e = read() {
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"message","text":"hé"}`)); err != nil {
		t.Fatal(err)
	}
	if e := read(); e.str("type") != "message" || e.str("text") != "hé" || e.num("id") != 1 {
		t.Fatalf("%v", e)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}
