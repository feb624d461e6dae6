package scripting

import (
	"context"
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
