package scripting

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
)

// benchMessage measures Hooks.Message for one ordinary chat message: the
// per-message overhead scripting adds to the chat server's hot path.
func benchMessage(b *testing.B, r *rig, text string) {
	ctx := context.Background()
	m := &chat.Message{Room: "lobby", User: "alice", Text: text}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.e.Message(ctx, alice, m)
	}
}

func BenchmarkMessageNoHandlers(b *testing.B) {
	benchMessage(b, newRig(b, map[string]string{"a.lua": `chat.command("x", function() end)`}), "hello there, how are you?")
}

func BenchmarkMessageOneEmptyHandler(b *testing.B) {
	benchMessage(b, newRig(b, map[string]string{"a.lua": `chat.on("message", function(msg) end)`}), "hello there, how are you?")
}

func BenchmarkMessageDefaultScripts(b *testing.B) {
	benchMessage(b, defaultRig(b), "hello there, how are you?")
}

func BenchmarkMessageDefaultScriptsFiltered(b *testing.B) {
	benchMessage(b, defaultRig(b), "darn it, what the heck")
}

func BenchmarkCommandWho(b *testing.B) {
	benchMessage(b, defaultRig(b), "/who")
}

func BenchmarkJoinDefaultScripts(b *testing.B) {
	r := defaultRig(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.e.Join(ctx, alice)
	}
}

// BenchmarkMessageParallel: rooms on several goroutines contend for the
// one Lua state.
func BenchmarkMessageParallel(b *testing.B) {
	r := defaultRig(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		m := &chat.Message{Room: "lobby", User: "alice", Text: "hello there, how are you?"}
		for pb.Next() {
			r.e.Message(context.Background(), alice, m)
		}
	})
}

// BenchmarkConnectHook: one handshake through a connect handler that reads
// a claim and a header and returns an identity — the per-handshake cost a
// connect script adds (request tables, the call, the identity checks).
func BenchmarkConnectHook(b *testing.B) {
	r := newRig(b, map[string]string{"a.lua": `
chat.on("connect", function(req)
  if req.headers["user-agent"] == "blocked" then return false, "no" end
  if req.claims then return { id = req.claims.sub, name = req.name, roles = { "member" } } end
end)`})
	req := ConnectRequest{
		Room: "lobby", Name: "alice", Addr: "127.0.0.1:5000",
		Query:   url.Values{"name": {"alice"}},
		Headers: http.Header{"User-Agent": {"Mozilla/5.0"}, "Origin": {"https://chat.example"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}},
		Claims:  map[string]any{"sub": "u-alice", "name": "alice", "exp": 1.8e9, "roles": []any{"member"}},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := r.e.Connect(ctx, req); res.Identity == nil {
			b.Fatalf("no identity: %+v", res)
		}
	}
}

// BenchmarkHandles: the check callers make on every handshake.
func BenchmarkHandles(b *testing.B) {
	r := newRig(b, map[string]string{"a.lua": `chat.on("message", function() end)`})
	b.ReportAllocs()
	for b.Loop() {
		if r.e.Handles("connect") {
			b.Fatal("handles connect")
		}
	}
}
