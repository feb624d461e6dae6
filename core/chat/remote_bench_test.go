package chat_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// BenchmarkRemoteJoined (issue 15) measures other nodes' joins into a
// room with 1000 members on this node (real clients over loopback,
// reading everything): the cost of a RemoteJoined until the room has
// taken it in (ns/op), and the frames the node writes per join
// (frames/join; 1000 would be a frame per join to every member). With
// announce coalescing as config.toml ships it (announce_batch_members =
// 100, announce_interval = "1s") and without it (interval 0: each room
// batch still sends one delta and one notice for all the joins it took).
// A room of 100,000 members over 6 nodes takes its ~83,000 remote joins
// this way.
func BenchmarkRemoteJoined(b *testing.B) {
	for _, interval := range []time.Duration{time.Second, 0} {
		b.Run("announce_interval="+interval.String(), func(b *testing.B) { benchmarkRemoteJoined(b, 1000, interval) })
	}
}

func benchmarkRemoteJoined(b *testing.B, members int, interval time.Duration) {
	hub := chattest.NewPresenceHub()
	cfg := chat.Config{
		MaxConnections: members + 10, AnnounceBatchMembers: 100, AnnounceInterval: interval,
		Presence: hub.Node("a"), Logger: slog.New(slog.DiscardHandler),
	}
	ts := chattest.Start(b, cfg, nil, nil)
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, members)
	for i := range members {
		c, _, err := websocket.DefaultDialer.Dial(ts.WS+fmt.Sprintf("/chat/bench?name=m%d", i), nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}()
	chattest.Eventually(b, "members joined", func() bool { return len(ts.Chat.Users("bench")) == members })
	entries := make([]chat.PresenceEntry, b.N)
	t0 := time.Now()
	for i := range entries {
		name := "r" + strconv.Itoa(i)
		entries[i] = chat.PresenceEntry{Node: "b", Session: uint64(i + 1), Name: name, Keys: []string{name}, Roles: []string{chat.RoleGuest}, Joined: t0}
	}
	frames0 := framesOut(b, ts)
	b.ResetTimer()
	for i := range entries {
		ts.Chat.RemoteJoined("bench", entries[i])
	}
	for len(ts.Chat.Users("bench")) < members+b.N {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	// The held announcements go out when the interval has passed: they
	// count too.
	time.Sleep(interval + 100*time.Millisecond)
	b.ReportMetric(float64(framesOut(b, ts)-frames0)/float64(b.N), "frames/join")
}

// framesOut reads moonchat_frames_out_total from ts's /metrics.
func framesOut(b *testing.B, ts *chattest.Server) float64 {
	_, body, _ := ts.Get(b, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "moonchat_frames_out_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatal("no moonchat_frames_out_total")
	return 0
}

// slowPresence adds a fixed latency to every claim, as a round trip to
// the cluster's roster does.
type slowPresence struct {
	chat.Presence
	delay time.Duration
}

func (p slowPresence) Claim(ctx context.Context, room string, e chat.PresenceEntry) error {
	time.Sleep(p.delay)
	return p.Presence.Claim(ctx, room, e)
}

// BenchmarkJoinsClaimed (issue 15) measures joins into one room when
// each claim takes 1 ms (a round trip to the cluster's roster): b.N
// clients dial at once, as the clients of a restarted node come back,
// and the benchmark ends when all are members. Claimed one after the
// other, a room would admit at most 1000 joins/s; joinRun claims a
// batch's joins together.
func BenchmarkJoinsClaimed(b *testing.B) {
	hub := chattest.NewPresenceHub()
	cfg := chat.Config{
		MaxConnections: b.N + 10, AnnounceBatchMembers: 100, AnnounceInterval: time.Second,
		Presence: slowPresence{hub.Node("a"), time.Millisecond}, Logger: slog.New(slog.DiscardHandler),
	}
	ts := chattest.Start(b, cfg, nil, nil)
	conns := make([]*websocket.Conn, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := websocket.DefaultDialer.Dial(ts.WS+fmt.Sprintf("/chat/bench?name=m%d", i), nil)
			if err != nil {
				b.Errorf("dial %d: %v", i, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	for len(ts.Chat.Users("bench")) < b.N {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "joins/s")
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}
