package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// Cluster-wide state end to end (issue 15, docs/cluster.md "What is
// cluster-wide"): the real binary on two nodes joined by a NATS server in
// the test process.

// sharedEvent is a moonchat.v1 server event with the fields these tests
// read besides event's: a presence change's joined and left names.
type sharedEvent struct {
	event
	Joined []string `json:"joined"`
	Left   []string `json:"left"`
}

// await reads c's events until match accepts one, for at most wait.
func await(t *testing.T, c *client, wait time.Duration, what string, match func(sharedEvent) bool) sharedEvent {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		_ = c.conn.SetReadDeadline(deadline)
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			t.Fatalf("%s waiting for %s: %v", c.name, what, err)
		}
		var e sharedEvent
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: bad event %q: %v", c.name, data, err)
		}
		if match(e) {
			return e
		}
	}
	t.Fatalf("%s: no %s within %v", c.name, what, wait)
	return sharedEvent{}
}

// ask sends a /command and returns the text of the system event
// answering it (the first one starting with prefix).
func ask(t *testing.T, c *client, cmd, prefix string) string {
	t.Helper()
	c.send(cmd)
	return await(t, c, waitLong, "the answer to "+cmd, func(e sharedEvent) bool {
		return e.Type == "system" && strings.HasPrefix(e.Text, prefix)
	}).Text
}

// sharedNodeConfig writes the config of cluster node name (as
// clusterNodeConfig) with the test JWT secret (guests still allowed) and
// scripting's own lines (dir = …, [scripts."X"] tables after it).
func sharedNodeConfig(t *testing.T, natsURL, name, scripting string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return testConfig(t, dir, map[string]string{
		"scripting": scripting + fmt.Sprintf("[cluster]\nnats_url = %q\nnode = %q\npublish_timeout = \"10s\"\n", natsURL, name) +
			"[auth]\njwt_secret = \"" + testSecret + "\"\n",
	})
}

// accountQuery is the query of a member signed in as account sub, name,
// with roles.
func accountQuery(t *testing.T, sub, name string, roles ...string) url.Values {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "name": name, "exp": time.Now().Add(time.Hour).Unix()}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	return url.Values{"token": {sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims)}}
}

// welcomeName joins and returns the name the server gave.
func welcomeName(t *testing.T, c *client) string {
	t.Helper()
	e := await(t, c, waitLong, "welcome", func(e sharedEvent) bool { return e.Type == "welcome" || e.Type == "error" })
	if e.Type != "welcome" {
		t.Fatalf("%s: %+v instead of a welcome", c.name, e)
	}
	return e.User
}

// whoList returns the names /who lists.
func whoList(t *testing.T, c *client) []string {
	t.Helper()
	c.send("/who")
	text := await(t, c, waitLong, "the answer to /who", func(e sharedEvent) bool {
		return e.Type == "system" && whoAnswer.MatchString(e.Text)
	}).Text
	return strings.Split(whoAnswer.ReplaceAllString(text, ""), ", ")
}

// whoAnswer is the start of who.lua's answer.
var whoAnswer = regexp.MustCompile(`^[0-9]+ in [^ ]+: `)

// TestClusterSharedState (issue 15): presence, names, a ban, a kick, a
// direct message and the audit log are the cluster's, not each node's; a
// killed node's members leave the survivor's presence.
func TestClusterSharedState(t *testing.T) {
	natsURL := startTestNATS(t)
	cfgA := sharedNodeConfig(t, natsURL, "node-a", "")
	cfgB := sharedNodeConfig(t, natsURL, "node-b", "")
	a := startChild(t, cfgA)
	b := startChild(t, cfgB)

	// Presence across nodes: watcher on node a sees node b's members
	// join, in presence and in /who.
	watcher := dial(t, a.addr, "lobby", "watcher", nil)
	welcomeName(t, watcher)
	await(t, watcher, waitLong, "the presence list", func(e sharedEvent) bool { return e.Type == "presence" && e.Users != nil })
	bobA := dial(t, a.addr, "lobby", "bob", nil)
	if got := welcomeName(t, bobA); got != "bob" {
		t.Fatalf("bob on node a was given %q", got)
	}

	// Names are unique across the nodes: bob, and BOB (a look-alike), on
	// node b get other names.
	bobB := dial(t, b.addr, "lobby", "bob", nil)
	nameB := welcomeName(t, bobB)
	bobB2 := dial(t, b.addr, "lobby", "BOB", nil)
	nameB2 := welcomeName(t, bobB2)
	for _, n := range []string{nameB, nameB2} {
		if strings.EqualFold(n, "bob") {
			t.Fatalf("node b gave %q while node a's member holds bob (names %q, %q)", n, nameB, nameB2)
		}
	}
	if strings.EqualFold(nameB, nameB2) {
		t.Fatalf("node b gave two members the names %q and %q", nameB, nameB2)
	}
	t.Logf("bob on node a; on node b: bob → %q, BOB → %q", nameB, nameB2)
	seen := map[string]bool{}
	await(t, watcher, waitLong, "node b's members joining", func(e sharedEvent) bool {
		if e.Type == "presence" {
			for _, n := range e.Joined {
				seen[n] = true
			}
		}
		return seen[nameB] && seen[nameB2]
	})
	who := whoList(t, watcher)
	for _, n := range []string{"watcher", "bob", nameB, nameB2} {
		if !slices.Contains(who, n) {
			t.Fatalf("/who on node a lists %v, without %q", who, n)
		}
	}
	if who := whoList(t, bobB); !slices.Contains(who, "watcher") || !slices.Contains(who, "bob") {
		t.Fatalf("/who on node b lists %v, without node a's members", who)
	}

	// A leave on node b is seen on node a.
	bobB.conn.Close()
	await(t, watcher, waitLong, nameB+" leaving", func(e sharedEvent) bool {
		return e.Type == "presence" && slices.Contains(e.Left, nameB)
	})

	// A ban on node a kicks node b's member and refuses it at node b's
	// handshake (and node a's).
	eve := dial(t, b.addr, "lobby", "eve", nil)
	if got := welcomeName(t, eve); got != "eve" {
		t.Fatalf("eve was given %q", got)
	}
	mod := dial(t, a.addr, "lobby", "mod", accountQuery(t, "u-mod", "mod", "admin"))
	welcomeName(t, mod)
	mod.send("/ban eve 1h spam")
	await(t, eve, waitLong, "the ban's notice", func(e sharedEvent) bool {
		return e.Type == "system" && strings.HasPrefix(e.Text, "you are banned from lobby")
	})
	_ = eve.conn.SetReadDeadline(time.Now().Add(waitLong))
	for {
		if _, _, err := eve.conn.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				t.Fatalf("eve on node b after the ban: %v, want close 1008", err)
			}
			break
		}
	}
	for _, addr := range []string{b.addr, a.addr} {
		u := url.URL{Scheme: "ws", Host: addr, Path: "/chat/lobby", RawQuery: "name=eve"}
		conn, resp, err := websocket.DefaultDialer.Dial(u.String(), nil)
		if err == nil {
			conn.Close()
			t.Fatalf("eve joined %s again after the ban", addr)
		}
		if resp == nil || resp.StatusCode != 403 {
			t.Fatalf("eve's handshake at %s after the ban: %v (response %v), want 403", addr, err, resp)
		}
	}

	// A kick on node a of node b's member: node b kicks it (close 1000
	// after the reason) and audits it.
	kim := dial(t, b.addr, "lobby", "kim", nil)
	welcomeName(t, kim)
	await(t, mod, waitLong, "kim joining", func(e sharedEvent) bool { return e.Type == "presence" && slices.Contains(e.Joined, "kim") })
	mod.send("/kick kim calm down")
	await(t, kim, waitLong, "the kick's notice", func(e sharedEvent) bool { return e.Type == "system" && strings.Contains(e.Text, "calm down") })
	_ = kim.conn.SetReadDeadline(time.Now().Add(waitLong))
	for {
		if _, _, err := kim.conn.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("kim on node b after the kick: %v, want close 1000", err)
			}
			break
		}
	}

	// A direct message between accounts: carol only ever connected to
	// node b, yet node a knows her name (the cluster's name owners).
	carol := dial(t, b.addr, "side", "carol", accountQuery(t, "u-carol", "carol"))
	welcomeName(t, carol)
	alice := dial(t, a.addr, "lobby", "alice", accountQuery(t, "u-alice", "alice"))
	welcomeName(t, alice)
	deadline := time.Now().Add(waitLong)
	for {
		if err := alice.conn.WriteJSON(map[string]string{"type": "direct", "to": "carol", "text": "across nodes"}); err != nil {
			t.Fatal(err)
		}
		e := await(t, alice, waitLong, "her direct message or an error", func(e sharedEvent) bool { return e.Type == "direct" || e.Type == "error" })
		if e.Type == "direct" {
			break
		}
		// Node a learns carol's name from the cluster's watch, a moment
		// after she joined node b.
		if e.Code != "no_such_user" || time.Now().After(deadline) {
			t.Fatalf("alice's direct message to carol: %+v", e)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e := await(t, carol, waitLong, "the direct message", func(e sharedEvent) bool { return e.Type == "direct" }); e.Text != "across nodes" {
		t.Fatalf("carol on node b: %+v", e)
	}

	// The audit log is the cluster's: both nodes list the ban once.
	var outs []string
	for _, cfg := range []string{cfgA, cfgB} {
		code, stdout, stderr := runCmd(t, "audit", "-config", cfg, "-json")
		if code != 0 {
			t.Fatalf("audit -config %s: exit %d: %s", cfg, code, stderr)
		}
		var bans, kicks []jsonAudit
		for line := range strings.SplitSeq(strings.TrimSpace(stdout), "\n") {
			var e jsonAudit
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("audit line %q: %v", line, err)
			}
			switch e.Action {
			case "ban":
				bans = append(bans, e)
			case "kick":
				kicks = append(kicks, e)
			}
		}
		if len(bans) != 1 || bans[0].Room != "lobby" || bans[0].Target != "name:eve" || !strings.HasPrefix(bans[0].Reason, "spam") {
			t.Fatalf("audit of %s: bans %+v\n%s", cfg, bans, stdout)
		}
		if len(kicks) != 1 || kicks[0].Room != "lobby" || kicks[0].Target != "name:kim" || !strings.HasSuffix(kicks[0].Reason, "calm down") {
			t.Fatalf("audit of %s: kicks %+v\n%s", cfg, kicks, stdout)
		}
		outs = append(outs, stdout)
	}
	if outs[0] != outs[1] {
		t.Fatalf("the nodes' audit logs differ:\nnode a:\n%snode b:\n%s", outs[0], outs[1])
	}

	// cluster status counts each node's own members of lobby: watcher,
	// bob, mod and alice on a; BOB's variant on b.
	code, stdout, stderr := runCmd(t, "cluster", "status", "-config", cfgA, "-json")
	var st clusterStatus
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil {
		t.Fatalf("cluster status: exit %d\n%s%s", code, stdout, stderr)
	}
	members := map[string]int{}
	for _, ns := range st.Nodes {
		for _, r := range ns.Rooms {
			if r.Room == "lobby" {
				members[ns.Node] = r.Members
			}
		}
	}
	if members["node-a"] != 4 || members["node-b"] != 1 {
		t.Fatalf("cluster status: lobby's members per node %v, want node-a 4, node-b 1", members)
	}

	// Node b killed: its members leave node a's presence once the
	// cluster counts it dead (heartbeat unchanged for 10 s).
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.wait(t)
	killed := time.Now()
	await(t, watcher, 3*waitLong, nameB2+" leaving with node b", func(e sharedEvent) bool {
		return e.Type == "presence" && slices.Contains(e.Left, nameB2)
	})
	t.Logf("node b's member left node a's presence %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	// The audit log is in NATS: with node b down, `moonchat audit` of its
	// config says where it is rather than read the node's file.
	code, _, stderr = runCmd(t, "audit", "-config", cfgB)
	if code != 1 || !strings.Contains(stderr, "is a cluster node: the cluster's audit log is kept in NATS (stream moonchat_audit)") {
		t.Fatalf("audit of the stopped node b: exit %d: %s", code, stderr)
	}
	if who := whoList(t, watcher); slices.Contains(who, nameB2) {
		t.Fatalf("/who on node a still lists %q after node b died: %v", nameB2, who)
	}
}

// TestClusterScripts (issue 15): chat.kv is the cluster's (written on one
// node, read on the other), and a chat.every timer runs on one node at a
// time: in a window, its ticks are counted on one node only, and the
// other counts them as skipped.
func TestClusterScripts(t *testing.T) {
	natsURL := startTestNATS(t)
	const script = `
local node = chat.options.node
chat.every(0.05, function()
  local n = tonumber(chat.kv.get("ticks:" .. node) or "0")
  chat.kv.set("ticks:" .. node, tostring(n + 1))
end)
chat.command("kvset", function(user, args)
  chat.kv.set("shared", args)
  return "kv set"
end)
chat.command("kvget", function(user)
  return "kv: " .. tostring(chat.kv.get("shared"))
end)
chat.command("announce", function(user, args)
  assert(chat.broadcast(user.room, args))
end)
chat.command("ticks", function(user)
  return "ticks: " .. (chat.kv.get("ticks:node-a") or "0") .. " " .. (chat.kv.get("ticks:node-b") or "0")
end)
`
	cfgs := map[string]string{}
	for _, name := range []string{"node-a", "node-b"} {
		dir := filepath.Join(t.TempDir(), "scripts")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ticker.lua"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		cfgs[name] = sharedNodeConfig(t, natsURL, name, fmt.Sprintf("dir = %q\n[scripts.ticker]\nnode = %q\n", dir, name))
	}
	a := startChild(t, cfgs["node-a"])
	b := startChild(t, cfgs["node-b"])
	ca := dial(t, a.addr, "lobby", "ca", nil)
	welcomeName(t, ca)
	cb := dial(t, b.addr, "lobby", "cb", nil)
	welcomeName(t, cb)

	// chat.kv: written on node a, read on node b.
	ask(t, ca, "/kvset from node a", "kv set")
	if got := ask(t, cb, "/kvget", "kv: "); got != "kv: from node a" {
		t.Fatalf("node b reads %q", got)
	}

	// The timer: once both nodes run, a window of ticks on one node only.
	ticks := func() (int, int) {
		var x, y int
		text := ask(t, ca, "/ticks", "ticks: ")
		if _, err := fmt.Sscanf(text, "ticks: %d %d", &x, &y); err != nil {
			t.Fatalf("/ticks: %q: %v", text, err)
		}
		return x, y
	}
	deadline := time.Now().Add(waitLong)
	x0, y0 := ticks()
	for x0+y0 == 0 { // the first holder has not ticked yet
		if time.Now().After(deadline) {
			t.Fatal("the timer never ran on either node")
		}
		time.Sleep(100 * time.Millisecond)
		x0, y0 = ticks()
	}
	time.Sleep(time.Second)
	x1, y1 := ticks()
	t.Logf("ticks in the window: node a %d, node b %d", x1-x0, y1-y0)
	if (x1 > x0) == (y1 > y0) {
		t.Fatalf("ticks in the window: node a %d → %d, node b %d → %d: want one node only", x0, x1, y0, y1)
	}
	holder, other := a, b
	if y1 > y0 {
		holder, other = b, a
	}
	// The other node counted the ticks it skipped, and says it does not
	// hold the lease.
	for _, n := range []struct {
		c          *child
		held, skip bool
	}{{holder, true, false}, {other, false, true}} {
		_, body := httpGet(t, "http://"+n.c.addr+"/metrics")
		wantHeld := "moonchat_cluster_timer_lease_held 0"
		if n.held {
			wantHeld = "moonchat_cluster_timer_lease_held 1"
		}
		if !strings.Contains(body, wantHeld+"\n") {
			t.Errorf("%s: no %q in /metrics", n.c.addr, wantHeld)
		}
		skipped := metricValue(t, body, `moonchat_script_timer_skipped_total{event="timer",script="ticker.lua"}`)
		if (skipped > 0) != n.skip {
			t.Errorf("%s: moonchat_script_timer_skipped_total %v", n.c.addr, skipped)
		}
	}

	// chat.broadcast reaches the room's members on every node: a notice
	// of node b's script comes to ca on node a, and to cb.
	cb.send("/announce the room closes at ten")
	for _, c := range []*client{ca, cb} {
		await(t, c, waitLong, "the notice of node b's script", func(e sharedEvent) bool {
			return e.Type == "system" && e.Text == "the room closes at ten"
		})
	}
}

// metricValue returns the value of the sample line that starts with
// series in a /metrics text body.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %q", series, line)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

// TestClusterNodeNameInUse (issue 15): a second process with a running
// node's name (another config, another store) does not start, and says
// why; once the first has stopped, it starts.
func TestClusterNodeNameInUse(t *testing.T) {
	natsURL := startTestNATS(t)
	first := startChild(t, sharedNodeConfig(t, natsURL, "node-a", ""))
	twin := sharedNodeConfig(t, natsURL, "node-a", "")
	code, stdout, stderr := runCmd(t, "serve", "-config", twin)
	if code != 1 || !strings.Contains(stderr, `[cluster] node "node-a": another moonchat process of this cluster runs with this node name, so this one does not start`) {
		t.Fatalf("a second node-a: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "listening") {
		t.Fatalf("the second node-a listened:\n%s%s", stdout, stderr)
	}
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t); code != 0 {
		t.Fatalf("node-a exited %d", code)
	}
	// Stopped cleanly, it gave its name up at once.
	startChild(t, twin)
}

// TestClusterSingleNodeState (issue 15): a single node's store that joins
// a cluster keeps its history, but its bans are not the cluster's: the
// node says so at start, and the ban is not in force in the cluster.
func TestClusterSingleNodeState(t *testing.T) {
	dir := t.TempDir()
	auth := "[auth]\njwt_secret = \"" + testSecret + "\"\n"
	single := startChild(t, testConfig(t, dir, map[string]string{"scripting": auth}))
	mod := dial(t, single.addr, "lobby", "mod", accountQuery(t, "u-mod", "mod", "admin"))
	welcomeName(t, mod)
	mod.send("/ban name:eve 1h")
	deadline := time.Now().Add(waitLong)
	for {
		u := url.URL{Scheme: "ws", Host: single.addr, Path: "/chat/lobby", RawQuery: "name=eve"}
		conn, resp, err := websocket.DefaultDialer.Dial(u.String(), nil)
		if err != nil && resp != nil && resp.StatusCode == 403 {
			break // banned on the single node
		}
		if conn != nil {
			conn.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("eve is not banned on the single node: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := single.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := single.wait(t); code != 0 {
		t.Fatalf("single node exited %d", code)
	}

	natsURL := startTestNATS(t)
	node := startChild(t, testConfig(t, dir, map[string]string{
		"scripting": auth + fmt.Sprintf("[cluster]\nnats_url = %q\nnode = \"node-a\"\n", natsURL),
	}))
	if !strings.Contains(node.log.String(), "this node's store holds bans, mutes or room settings from single-node mode (restrictions=1 room_settings=0)") {
		t.Fatalf("no word of the single node's ban at start:\n%s", node.log)
	}
	eve := dial(t, node.addr, "lobby", "eve", nil)
	if got := welcomeName(t, eve); got != "eve" {
		t.Fatalf("eve was given %q", got)
	}
}
