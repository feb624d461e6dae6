package chat_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// trivialHooks is the cheapest possible Hooks: it lets everything through,
// so the benchmark measures the hook call path, not a script.
type trivialHooks struct{}

func (trivialHooks) Join(ctx context.Context, u chat.User) chat.JoinResult { return chat.JoinResult{} }
func (trivialHooks) Message(ctx context.Context, u chat.User, m *chat.Message) chat.MessageResult {
	return chat.MessageResult{}
}
func (trivialHooks) Leave(ctx context.Context, u chat.User) error              { return nil }
func (trivialHooks) Rename(ctx context.Context, u chat.User, old string) error { return nil }

func BenchmarkBroadcast100(b *testing.B)  { benchmarkBroadcast(b, 100, broadcastPad, false) }
func BenchmarkBroadcast1000(b *testing.B) { benchmarkBroadcast(b, 1000, broadcastPad, false) }

// BenchmarkBroadcast1000Ignoring is BenchmarkBroadcast1000 where 10
// members ignore a member who does not send (issue 14): the room has
// ignorers, so every batch is checked against their lists, but nobody
// hides the sender; compare with BenchmarkBroadcast1000.
func BenchmarkBroadcast1000Ignoring(b *testing.B) {
	benchmarkBroadcastIgnoring(b, 1000, broadcastPad, false, 10)
}

// BenchmarkBroadcastBroker compares one node with a cluster node of
// chattest's in-memory Broker (issue 15), for 1 and 100 members: what the
// cluster path itself adds per message (publish, the consumer's hop and
// replica write, the room's opDeliver), the log being free. A real log
// adds its publish latency (docs/cluster.md, BenchmarkPublish).
func BenchmarkBroadcastBroker(b *testing.B) {
	for _, members := range []int{1, 100} {
		for _, broker := range []bool{false, true} {
			name := fmt.Sprintf("members=%d/single", members)
			if broker {
				name = fmt.Sprintf("members=%d/broker", members)
			}
			b.Run(name, func(b *testing.B) { benchmarkBroadcastOn(b, members, broadcastPad, false, 0, broker) })
		}
	}
}

// BenchmarkBroadcast100Chat and BenchmarkBroadcast100Deflate (issue 13)
// send the same chat-like text, ~150 bytes (above the default compression
// threshold), to 100 members without and with permessage-deflate (every
// member offers it, as browsers do): deliveries/s, latency, and the bytes
// each delivery takes on the wire (wire-B/delivery). With compression the
// 100 in-process gorilla clients inflating every message take most of the
// two cores (about 60% of the CPU profile), so deliveries/s there measures
// the clients more than the server; the server's side is core/ws's
// BenchmarkBroadcastDeflate.
func BenchmarkBroadcast100Chat(b *testing.B) { benchmarkBroadcast(b, 100, chatPad, false) }
func BenchmarkBroadcast100Deflate(b *testing.B) {
	benchmarkBroadcast(b, 100, chatPad, true)
}

// The text after the timestamp of each benchmark message.
var (
	broadcastPad = strings.Repeat("x", 40)
	chatPad      = "did anyone else see the deploy of the new room list go out? the page feels a lot faster for me, and the member list stays in order now"
)

// countingConn counts the bytes a benchmark client reads off the network.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// benchmarkBroadcast measures fan-out over loopback: one sender, members
// real clients reading every message. The sender keeps at most window
// messages in flight (not yet received by everyone) so that the clients,
// which share the CPU with the server, are not evicted as slow consumers.
// Reported: deliveries/s (messages x members) and the p50/p99 latency from
// sending to receiving; with a full window the latency is mostly the time
// the window takes to drain (window x members / deliveries per second).
func benchmarkBroadcast(b *testing.B, members int, pad string, deflate bool) {
	benchmarkBroadcastIgnoring(b, members, pad, deflate, 0)
}

// benchmarkBroadcastIgnoring is benchmarkBroadcast where the members
// m1..mN (N = ignorers) ignore the last member, who never sends.
func benchmarkBroadcastIgnoring(b *testing.B, members int, pad string, deflate bool, ignorers int) {
	benchmarkBroadcastOn(b, members, pad, deflate, ignorers, false)
}

// benchmarkBroadcastOn is benchmarkBroadcastIgnoring on a single node, or
// (broker) on a cluster node of chattest's in-memory Broker (issue 15):
// each message published, read back by the node's consumer, applied to
// its replica and delivered through the room's queue (opDeliver).
func benchmarkBroadcastOn(b *testing.B, members int, pad string, deflate bool, ignorers int, broker bool) {
	// Announce coalescing as config.toml ships it: a big room's joins are
	// announced together, as in production.
	cfg := chat.Config{MaxConnections: members + 10, AnnounceBatchMembers: 100, AnnounceInterval: time.Second, Logger: slog.New(slog.DiscardHandler)}
	cfg.WS.Compression = deflate
	var ts *chattest.Server
	if broker {
		ts, _ = chattest.StartNode(b, chattest.NewBroker(), cfg, trivialHooks{}, nil)
	} else {
		ts = chattest.Start(b, cfg, trivialHooks{}, chattest.NewHistory())
	}
	const window = 256
	var delivered atomic.Int64
	latencies := make([][]time.Duration, members)
	conns := make([]*websocket.Conn, members)
	var wire atomic.Int64 // bytes the members read off the network
	for i := range members {
		d := websocket.Dialer{
			EnableCompression: deflate,
			NetDial: func(network, addr string) (net.Conn, error) {
				c, err := net.Dial(network, addr)
				return countingConn{c, &wire}, err
			},
		}
		c, resp, err := d.Dial(ts.WS+fmt.Sprintf("/chat/bench?name=m%d", i), nil)
		if err == nil && deflate && resp.Header.Get("Sec-WebSocket-Extensions") == "" {
			b.Fatal("permessage-deflate not negotiated")
		}
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = c
	}
	// Wait until everyone is in (join notices drained below by prefix).
	chattest.Eventually(b, "members joined", func() bool { return len(ts.Chat.Users("bench")) == members })
	if ignorers > 0 {
		ids := make(map[string]uint64)
		for _, u := range ts.Chat.Users("bench") {
			ids[u.Name] = u.SessionID
		}
		target := ids[fmt.Sprintf("m%d", members-1)]
		for i := 1; i <= ignorers; i++ {
			if err := ts.Chat.Ignore(ids[fmt.Sprintf("m%d", i)], chat.IgnoreTarget{Session: target}); err != nil {
				b.Fatal(err)
			}
		}
	}

	var wg sync.WaitGroup
	want := b.N
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, want)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
			for len(lat) < want {
				_, data, err := c.ReadMessage()
				if err != nil {
					b.Errorf("member %d: %v after %d", i, err, len(lat))
					return
				}
				// "m0: <unix nanos> padding"
				s := string(data)
				if !strings.HasPrefix(s, "m0: ") {
					continue
				}
				s = s[4:]
				if sp := strings.IndexByte(s, ' '); sp > 0 {
					s = s[:sp]
				}
				ns, _ := strconv.ParseInt(s, 10, 64)
				lat = append(lat, time.Duration(time.Now().UnixNano()-ns))
				delivered.Add(1)
			}
			latencies[i] = lat
		}()
	}
	sender := conns[0]
	b.ResetTimer()
	wireStart := wire.Load()
	start := time.Now()
	for n := range b.N {
		for int64(n)*int64(members)-delivered.Load() > window*int64(members) {
			time.Sleep(50 * time.Microsecond)
		}
		msg := strconv.AppendInt(nil, time.Now().UnixNano(), 10)
		msg = append(msg, ' ')
		msg = append(msg, pad...)
		if err := sender.WriteMessage(websocket.TextMessage, msg); err != nil {
			b.Fatalf("send: %v", err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	}
	b.ReportMetric(float64(b.N)*float64(members)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(wire.Load()-wireStart)/(float64(b.N)*float64(members)), "wire-B/delivery")
	for _, c := range conns {
		_ = c.Close()
	}
}

// BenchmarkPostIdentity shows that identity costs the message path
// nothing (issue 12): the same messages posted through a room
// (Host.Action: room rules, the message hook, encoding for both formats,
// delivery to a moonchat.v1 and a plain-text member) by a guest, by an
// account with roles, whose JSON events carry user_id and roles, and by a
// guest Host.Grant gave a role. Both
// should report the same allocs/op: a member's roles are read with one
// atomic load and its *Account is shared by all its messages. No store:
// History.Append's cost is the store's (package store's benchmarks).
func BenchmarkPostIdentity(b *testing.B) {
	for _, tc := range []struct {
		name, path string
		grant      bool
		mod        bool
	}{
		{"guest", "/chat/bench?name=gus", false, false},
		{"account", "/chat/bench?as=u-alice&n=alice&role=mod&role=ops", false, false},
		{"granted-guest", "/chat/bench?name=gus", true, false}, // Host.Grant gave it a role
		// Issue 14: 300 bans and mutes on others (accounts, guest
		// names, addresses) and slow mode in another room: what the
		// checks cost a member they do not match.
		{"guest-restrictions", "/chat/bench?name=gus", false, true},
		{"account-restrictions", "/chat/bench?as=u-alice&n=alice&role=mod&role=ops", false, true},
	} {
		b.Run(tc.name, func(b *testing.B) { benchmarkPostIdentity(b, tc.path, tc.grant, tc.mod) })
	}
}

func benchmarkPostIdentity(b *testing.B, path string, grant, restrict bool) {
	rules, err := chat.NewRoomRules([]chat.RoomRule{{Pattern: "bench", Read: []string{"*"}, Post: []string{"guest", "user"}, History: true}})
	if err != nil {
		b.Fatal(err)
	}
	cfg := chat.Config{Authenticator: authFunc(memberAuth), RoomRules: rules, Logger: slog.New(slog.DiscardHandler)}
	ts := chattest.Start(b, cfg, trivialHooks{}, nil)
	want := int64(b.N)
	sender, _, err := ts.TryDial(path, "moonchat.v1")
	if err != nil {
		b.Fatal(err)
	}
	defer sender.Close()
	plain, _, err := ts.TryDial("/chat/bench?name=pat", "")
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	// Each reader counts the messages it got (JSON "message" events,
	// plain lines ending in the benchmark's text) and says when it has
	// them all; frames are discarded through a fixed buffer.
	const text = "benchmark message"
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
	go read(sender, func(f []byte) bool { return bytes.HasPrefix(f, []byte(`{"type":"message"`)) })
	go read(plain, func(f []byte) bool { return bytes.HasSuffix(f, []byte(" "+text)) })
	var id uint64
	chattest.Eventually(b, "both joined", func() bool {
		us := ts.Chat.Users("bench")
		if len(us) == 2 {
			id = us[0].SessionID
		}
		return len(us) == 2
	})
	if grant {
		if err := ts.Chat.Grant(id, "mod"); err != nil {
			b.Fatal(err)
		}
	}
	if restrict {
		for i := range 100 {
			for _, t := range []chat.Target{{Account: fmt.Sprintf("u-%d", i)}, {Name: fmt.Sprintf("troll%d", i)}, {Addr: fmt.Sprintf("203.0.113.%d", i)}} {
				kind := chat.KindBan
				if i%2 == 0 {
					kind = chat.KindMute
				}
				if err := ts.Chat.Restrict(kind, "", t, 0, "", "bench"); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := ts.Chat.SetRoomSettings("elsewhere", chat.RoomSettings{Slow: time.Minute}, "bench"); err != nil {
			b.Fatal(err)
		}
	}
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
