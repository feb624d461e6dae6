package chat_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// The flood tests run on a fake clock (chattest.Clock): no bucket refills
// until the test advances it, so that which message is refused does not
// depend on how fast the machine is, and a refill is shown by moving the
// time, not by sleeping.

// floodError reads c's events until an error and checks its code and that
// its text contains want.
func floodError(t *testing.T, c *chattest.Client, code, want string) {
	t.Helper()
	e := nextOf(t, c, "error")
	if e.Str("code") != code || !strings.Contains(e.Str("text"), want) {
		t.Fatalf("got %v, want error %q containing %q", e, code, want)
	}
}

// flushed waits until the server has read everything c sent so far: it
// asks for the presence list (never refused by the flood limits) and
// reads up to the answer, skipping what comes before it. A test advances
// the fake clock only after that, so that no message it sent before is
// read at the later time.
func flushed(t *testing.T, c *chattest.Client) {
	t.Helper()
	c.SendJSON(map[string]string{"type": "presence"})
	for {
		if e := nextOf(t, c, "presence"); e["users"] != nil {
			return
		}
	}
}

// say sends text as a moonchat.v1 message.
func say(c *chattest.Client, text string) {
	c.SendJSON(map[string]string{"type": "message", "text": text})
}

// TestFloodPerAddress: the connections from one address share one bucket
// ([chat] flood_rate_addr): a second connection does not bring a second
// allowance. Another address is not touched, and the bucket refills with
// the (fake) time.
func TestFloodPerAddress(t *testing.T) {
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{FloodRate: 100, FloodBurst: 100, FloodRateAddr: 1, FloodBurstAddr: 3, Clock: clock}, nil, nil)
	w := ts.DialFrom(t, "127.0.0.3", "/?name=w", "")
	w.Expect("* w joined")
	a1 := ts.DialFrom(t, "127.0.0.1", "/?name=a1", chat.SubprotocolJSON)
	w.Expect("* a1 joined")
	a2 := ts.DialFrom(t, "127.0.0.1", "/?name=a2", chat.SubprotocolJSON)
	w.Expect("* a2 joined")
	b := ts.DialFrom(t, "127.0.0.2", "/?name=b", chat.SubprotocolJSON)
	w.Expect("* b joined")

	for i := range 3 {
		say(a1, fmt.Sprint("a1 ", i))
	}
	w.Expect("a1: a1 0", "a1: a1 1", "a1: a1 2")
	// a2's own bucket is full, but its address has spent its burst.
	say(a2, "a2 refused")
	floodError(t, a2, "flood", "your address is sending too fast")
	// Another address has its own bucket: all of b's messages go through.
	for i := range 3 {
		say(b, fmt.Sprint("b ", i))
	}
	w.Expect("b: b 0", "b: b 1", "b: b 2")
	// One second at rate 1 is one token for the address, whichever
	// connection spends it.
	clock.Advance(time.Second)
	say(a2, "a2 later")
	w.Expect("a2: a2 later")
	if l := metricLine(t, ts, `moonchat_flood_refused_total{limit="address"}`); !strings.HasSuffix(l, " 1") {
		t.Errorf("metric: %q, want 1 refusal by the address limit", l)
	}
}

// TestFloodAddressIsTheClients: the per-address bucket is the client's
// address as the per-address connection limits see it: behind a trusted
// proxy the forwarded one (two clients through one proxy do not share a
// bucket; one client's two connections do), and an address in
// limits_exempt (AddrLimits.Exempt) has no per-address bucket.
func TestFloodAddressIsTheClients(t *testing.T) {
	clock := &chattest.Clock{}
	trusted, _ := addrlimit.ParsePrefixes([]string{"127.0.0.1"})
	exempt, _ := addrlimit.ParsePrefixes([]string{"127.0.0.5"})
	ts := chattest.Start(t, chat.Config{FloodRateAddr: 1, FloodBurstAddr: 1, Clock: clock,
		AddrLimits: addrlimit.Config{Exempt: exempt},
		Proxies:    addrlimit.NewProxies(trusted, addrlimit.XForwardedFor)}, nil, nil)
	w := ts.DialFrom(t, "127.0.0.3", "/?name=w", "")
	w.Expect("* w joined")
	via := func(name, client string) *chattest.Client {
		c := chattest.DialHeader(t, "127.0.0.1", ts.WS+"/?name="+name, chat.SubprotocolJSON, http.Header{"X-Forwarded-For": {client}})
		w.Expect("* " + name + " joined")
		return c
	}
	p1 := via("p1", "198.51.100.1")
	p2 := via("p2", "198.51.100.2")
	p1b := via("p1b", "198.51.100.1")
	say(p1, "p1")
	w.Expect("p1: p1")
	say(p2, "p2") // another client behind the same proxy
	w.Expect("p2: p2")
	say(p1b, "p1b") // the same client's second connection
	floodError(t, p1b, "flood", "your address is sending too fast")

	e1 := ts.DialFrom(t, "127.0.0.5", "/?name=e1", chat.SubprotocolJSON)
	w.Expect("* e1 joined")
	e2 := ts.DialFrom(t, "127.0.0.5", "/?name=e2", chat.SubprotocolJSON)
	w.Expect("* e2 joined")
	for i := range 3 {
		say(e1, fmt.Sprint("e1 ", i))
	}
	w.Expect("e1: e1 0", "e1: e1 1", "e1: e1 2")
	for i := range 3 {
		say(e2, fmt.Sprint("e2 ", i))
	}
	w.Expect("e2: e2 0", "e2: e2 1", "e2: e2 2")
}

// TestFloodPerAccount: the connections of one account share one bucket
// ([chat] flood_rate_account), whatever their addresses; another account
// and a guest on the same address are not touched.
func TestFloodPerAccount(t *testing.T) {
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), FloodRateAccount: 1, FloodBurstAccount: 2, Clock: clock}, nil, nil)
	w := ts.Dial(t, "/?name=w", "")
	w.Expect("* w joined")
	tab1 := ts.DialFrom(t, "127.0.0.1", "/?as=u-alice&n=alice", chat.SubprotocolJSON)
	w.Expect("* alice joined")
	tab2 := ts.DialFrom(t, "127.0.0.2", "/?as=u-alice&n=alice", chat.SubprotocolJSON)
	w.Expect("* alice-2 joined")
	bob := ts.DialFrom(t, "127.0.0.1", "/?as=u-bob&n=bob", chat.SubprotocolJSON)
	w.Expect("* bob joined")

	say(tab1, "one")
	say(tab1, "two")
	w.Expect("alice: one", "alice: two")
	say(tab2, "three")
	floodError(t, tab2, "flood", "your account is sending too fast")
	say(bob, "bob 1")
	say(bob, "bob 2")
	w.Expect("bob: bob 1", "bob: bob 2")
	w.Send("guest 1")
	w.Expect("w: guest 1")
	clock.Advance(time.Second)
	say(tab2, "four")
	w.Expect("alice-2: four")
}

// TestFloodRefundsOtherBuckets: a message one bucket refuses spends no
// token of the others: the connection's own bucket, which let five
// refused messages through to the account's, is as full afterwards, and
// every refusal is the account's.
func TestFloodRefundsOtherBuckets(t *testing.T) {
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), FloodRate: 0.001, FloodBurst: 2, FloodRateAccount: 1, FloodBurstAccount: 1, Clock: clock}, nil, nil)
	w := ts.Dial(t, "/?name=w", "")
	w.Expect("* w joined")
	tab1 := ts.Dial(t, "/?as=u-alice&n=alice", chat.SubprotocolJSON)
	w.Expect("* alice joined")
	tab2 := ts.Dial(t, "/?as=u-alice&n=alice", chat.SubprotocolJSON)
	w.Expect("* alice-2 joined")
	say(tab1, "one") // the account's only token
	w.Expect("alice: one")
	for range 5 {
		say(tab2, "refused by the account")
	}
	floodError(t, tab2, "flood", "your account")
	flushed(t, tab2)
	// Without refunds tab2's own bucket (rate 0.001) would be empty now.
	clock.Advance(time.Second)
	say(tab2, "two")
	w.Expect("alice-2: two")
	clock.Advance(time.Second)
	say(tab2, "three")
	w.Expect("alice-2: three")
	for limit, want := range map[string]string{"account": " 5", "connection": " 0"} {
		if l := metricLine(t, ts, `moonchat_flood_refused_total{limit="`+limit+`"}`); !strings.HasSuffix(l, want) {
			t.Errorf("metric: %q, want%s", l, want)
		}
	}
}

// TestFloodStrikes: a connection refused flood_strikes times within
// flood_strike_window is closed with 1008 and says why; refusals spread
// over more than the window do not close it; the other clients, from the
// same address, go on chatting, and history holds every accepted message
// and no refused one.
func TestFloodStrikes(t *testing.T) {
	clock := &chattest.Clock{}
	hist := chattest.NewHistory()
	ts := chattest.Start(t, chat.Config{FloodRate: 0.001, FloodBurst: 1, FloodStrikes: 3, FloodStrikeWindow: 10 * time.Second, Clock: clock, Replay: 10, APILimit: 10}, nil, hist)
	w := ts.Dial(t, "/?name=w", "")
	w.Expect("* w joined")
	slow := ts.Dial(t, "/?name=slow", chat.SubprotocolJSON)
	w.Expect("* slow joined")
	f := ts.Dial(t, "/?name=f", chat.SubprotocolJSON)
	w.Expect("* f joined")

	// Two refusals, then the window passes, then two more: never three
	// within one window, so slow stays.
	say(slow, "ok")
	say(slow, "x")
	say(slow, "x")
	floodError(t, slow, "flood", "you are sending too fast") // a notice a second at most: one per burst here
	flushed(t, slow)
	clock.Advance(10 * time.Second)
	say(slow, "x")
	say(slow, "x")
	floodError(t, slow, "flood", "you are sending too fast")
	flushed(t, slow) // still open

	// Three refusals in the same instant close f.
	say(f, "ok")
	for range 3 {
		say(f, "x")
	}
	floodError(t, f, "flood", "you are sending too fast")
	floodError(t, f, "flood", "flooding: too many messages")
	f.ExpectCloseReason(1008, "flooding: too many messages")
	w.Expect("slow: ok", "f: ok", "* f left")
	w.Send("still here")
	w.Expect("w: still here")
	stored, err := hist.Recent("lobby", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range stored {
		got = append(got, m.User+": "+m.Text)
	}
	if want := []string{"slow: ok", "f: ok", "w: still here"}; !slices.Equal(got, want) {
		t.Errorf("history %q, want %q", got, want)
	}
	if l := metricLine(t, ts, "moonchat_flood_closed_total"); !strings.HasSuffix(l, " 1") {
		t.Errorf("metric: %q, want 1 connection closed", l)
	}
	if l := metricLine(t, ts, `moonchat_flood_refused_total{limit="connection"}`); !strings.HasSuffix(l, " 7") {
		t.Errorf("metric: %q, want 7 refusals (4 of slow, 3 of f)", l)
	}
}

// TestFloodStrikesPlainText: a plain-text client is told with a "* " line
// before the close.
func TestFloodStrikesPlainText(t *testing.T) {
	ts := chattest.Start(t, chat.Config{FloodRate: 0.001, FloodBurst: 1, FloodStrikes: 2, FloodStrikeWindow: time.Minute, Clock: &chattest.Clock{}}, nil, nil)
	f := ts.Dial(t, "/?name=f", "")
	f.Expect("* f joined")
	f.Send("ok")
	f.Send("x")
	f.Send("x")
	// The notices are written at once, the message after its trip
	// through the room (it may come after the close: then never).
	var notices []string
	_ = f.Conn.SetReadDeadline(time.Now().Add(chattest.Wait))
	for {
		_, data, err := f.Conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 1008 || ce.Text != "flooding: too many messages" {
				t.Fatalf("ended with %v, want close 1008 flooding: too many messages", err)
			}
			break
		}
		if l := string(data); l != "f: ok" {
			notices = append(notices, l)
		}
	}
	if want := []string{"* you are sending too fast; messages were dropped", "* flooding: too many messages"}; !slices.Equal(notices, want) {
		t.Fatalf("notices %q, want %q", notices, want)
	}
}

// TestHostLimits: Host.Limits reports a member's limits (the server's,
// until changed); Host.SetLimits changes them for that session only, and
// a member with limits of its own is no longer held to its address's and
// account's shared buckets (a trusted bot can get more than its account);
// limits that cannot work and a member who left are errors.
func TestHostLimits(t *testing.T) {
	clock := &chattest.Clock{}
	ts := chattest.Start(t, chat.Config{Authenticator: authFunc(memberAuth), FloodRate: 10, FloodBurst: 20,
		FloodRateAccount: 1, FloodBurstAccount: 1, FloodRateAddr: 100, FloodBurstAddr: 100, Clock: clock}, nil, nil)
	w := ts.Dial(t, "/?name=w", "")
	w.Expect("* w joined")
	bot := ts.Dial(t, "/?as=u-bot&n=bot", chat.SubprotocolJSON)
	w.Expect("* bot joined")
	guest := ts.Dial(t, "/?name=g", chat.SubprotocolJSON)
	w.Expect("* g joined")
	ids := map[string]uint64{}
	for _, u := range ts.Chat.Users("lobby") {
		ids[u.Name] = u.SessionID
	}

	if l, err := ts.Chat.Limits(ids["bot"]); err != nil || l != (chat.Limits{Rate: 10, Burst: 20}) {
		t.Fatalf("Limits = %+v, %v; want the server's 10/20", l, err)
	}
	for _, bad := range []chat.Limits{{Rate: -1, Burst: 1}, {Rate: 1, Burst: 0}, {Rate: 1, Burst: chat.MaxFloodBurst + 1}} {
		if err := ts.Chat.SetLimits(ids["bot"], bad); !errors.Is(err, chat.ErrInvalidLimits) {
			t.Errorf("SetLimits(%+v) = %v, want ErrInvalidLimits", bad, err)
		}
	}
	if err := ts.Chat.SetLimits(999, chat.Limits{Rate: 1, Burst: 1}); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("SetLimits(gone) = %v", err)
	}
	if _, err := ts.Chat.Limits(999); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Errorf("Limits(gone) = %v", err)
	}

	// The bot's account allows one message; its own limits allow five.
	if err := ts.Chat.SetLimits(ids["bot"], chat.Limits{Rate: 100, Burst: 5}); err != nil {
		t.Fatal(err)
	}
	if l, _ := ts.Chat.Limits(ids["bot"]); l != (chat.Limits{Rate: 100, Burst: 5}) {
		t.Fatalf("Limits after SetLimits = %+v", l)
	}
	for i := range 6 {
		say(bot, fmt.Sprint("bot ", i))
	}
	w.Expect("bot: bot 0", "bot: bot 1", "bot: bot 2", "bot: bot 3", "bot: bot 4")
	floodError(t, bot, "flood", "you are sending too fast")
	// A suspicious guest gets less than the server's 20.
	if err := ts.Chat.SetLimits(ids["g"], chat.Limits{Rate: 0.001, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	say(guest, "g 1")
	say(guest, "g 2")
	floodError(t, guest, "flood", "you are sending too fast")
	w.Send("w 1")
	w.Expect("g: g 1", "w: w 1")
	// Rate 0 is no limit, reported with burst 0.
	if err := ts.Chat.SetLimits(ids["g"], chat.Limits{Rate: 0, Burst: 7}); err != nil {
		t.Fatal(err)
	}
	if l, _ := ts.Chat.Limits(ids["g"]); l != (chat.Limits{}) {
		t.Errorf("Limits after rate 0 = %+v, want {0 0}", l)
	}
	for i := range 30 {
		say(guest, fmt.Sprint("free ", i))
	}
	for i := range 30 {
		w.Expect(fmt.Sprint("g: free ", i))
	}
}
