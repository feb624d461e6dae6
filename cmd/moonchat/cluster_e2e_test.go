package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Cluster mode end to end (issue 15): a NATS server with JetStream runs
// inside the test process, and the moonchat nodes are the real binary in
// child processes, as an operator runs them.

// clusterNodeConfig writes the config of cluster node name, in its own
// directory, joined to the NATS server at natsURL.
func clusterNodeConfig(t *testing.T, natsURL, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return testConfig(t, dir, map[string]string{
		"scripting": fmt.Sprintf("[cluster]\nnats_url = %q\nnode = %q\npublish_timeout = \"10s\"\n", natsURL, name),
	})
}

// collector reads one client's events in the background and keeps its
// live chat messages, in the order received.
type collector struct {
	c       *client
	mu      sync.Mutex
	msgs    []event
	redacts []uint64
	errors  []string // the codes of error events
	done    chan struct{}
}

func collect(c *client) *collector {
	col := &collector{c: c, done: make(chan struct{})}
	go func() { // ends when the connection does (the test closes it)
		defer close(col.done)
		for {
			e, err := c.next()
			if err != nil {
				return
			}
			col.mu.Lock()
			switch e.Type {
			case "message":
				col.msgs = append(col.msgs, e)
			case "redact":
				col.redacts = append(col.redacts, e.ID)
			case "error":
				col.errors = append(col.errors, e.Code)
			}
			col.mu.Unlock()
		}
	}()
	return col
}

// waitN waits until the client received n messages (or fails).
func (col *collector) waitN(t *testing.T, n int) []event {
	t.Helper()
	deadline := time.Now().Add(2 * waitLong)
	for {
		col.mu.Lock()
		got := slices.Clone(col.msgs)
		col.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-col.done:
			t.Fatalf("%s: connection ended after %d of %d messages", col.c.name, len(got), n)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages within %v", col.c.name, len(got), n, 2*waitLong)
		}
	}
}

// waitText waits until the client received a message with this text.
func (col *collector) waitText(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		col.mu.Lock()
		got := slices.ContainsFunc(col.msgs, func(e event) bool { return e.Text == text })
		col.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no message %q within %v", col.c.name, text, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitError waits until the client got an error event with this code.
func (col *collector) waitError(t *testing.T, code string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		col.mu.Lock()
		got := slices.Contains(col.errors, code)
		col.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no error %q within %v", col.c.name, code, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRedact waits until the client was told message id was deleted.
func (col *collector) waitRedact(t *testing.T, id uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		col.mu.Lock()
		got := slices.Contains(col.redacts, id)
		col.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no redact of %d within %v", col.c.name, id, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hasLine reports whether a line of out has exactly these fields.
func hasLine(out string, fields ...string) bool {
	for l := range strings.SplitSeq(out, "\n") {
		if slices.Equal(strings.Fields(l), fields) {
			return true
		}
	}
	return false
}

// checkSequence: msgs are ids first..first+len-1, in order, and each
// message is the one want has for its id.
func checkSequence(t *testing.T, who string, msgs []event, first uint64, want map[uint64]event) {
	t.Helper()
	for i, m := range msgs {
		if m.ID != first+uint64(i) {
			t.Fatalf("%s: message %d has id %d, want %d (ids: %v)", who, i, m.ID, first+uint64(i), ids(msgs))
		}
		if w, ok := want[m.ID]; ok && (w.User != m.User || w.Text != m.Text) {
			t.Fatalf("%s: id %d is %s: %q, another client has %s: %q", who, m.ID, m.User, m.Text, w.User, w.Text)
		}
	}
}

func ids(msgs []event) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// historyJSON runs `moonchat history -json` for a config (through the
// running server's HTTP API when server is set, else from the file) and
// returns the room's messages.
func historyJSON(t *testing.T, cfg, server, room string) []event {
	t.Helper()
	args := []string{"history", "-config", cfg, "-room", room, "-json", "-limit", "10000"}
	if server != "" {
		args = append(args, "-server", server)
	}
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("moonchat %v: exit %d: %s", args, code, stderr)
	}
	var out []event
	for line := range strings.SplitSeq(strings.TrimSpace(stdout), "\n") {
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("moonchat history -json line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// sameHistory: a and b hold the same messages (id, user, text), ids
// 1..n without gap or duplicate but for the deleted one.
func sameHistory(t *testing.T, what string, a, b []event, n int, deleted uint64) {
	t.Helper()
	if len(a) != n-1 || len(b) != n-1 {
		t.Fatalf("%s: %d and %d messages, want %d", what, len(a), len(b), n-1)
	}
	id := uint64(0)
	for i := range a {
		if id++; id == deleted {
			id++
		}
		if a[i].ID != id || b[i].ID != id || a[i].User != b[i].User || a[i].Text != b[i].Text {
			t.Fatalf("%s: message %d: %+v and %+v (want id %d on both, the same)", what, i, a[i], b[i], id)
		}
	}
}

// TestClusterTwoNodes (issue 15): two nodes on one NATS server. Members
// on both nodes post at once; every member sees every message once, in
// one order, with the same ids. A node stopped while the other carries on
// catches up when it returns (no gap, no duplicate), a member resuming
// there with since=ID gets exactly what it missed, a deletion on one node
// reaches the members and the history of both, and `moonchat history`
// and `moonchat cluster status` agree on both nodes, running and stopped.
func TestClusterTwoNodes(t *testing.T) {
	natsURL := startTestNATS(t)
	cfgA := clusterNodeConfig(t, natsURL, "node-a")
	cfgB := clusterNodeConfig(t, natsURL, "node-b")
	a := startChild(t, cfgA)
	b := startChild(t, cfgB)

	alice := dial(t, a.addr, "lobby", "alice", nil)
	carol := dial(t, a.addr, "lobby", "carol", nil)
	bob := dial(t, b.addr, "lobby", "bob", nil)
	dave := dial(t, b.addr, "lobby", "dave", nil)
	cols := map[string]*collector{}
	for _, c := range []*client{alice, carol, bob, dave} {
		c.waitFor("history", func(e event) bool { return e.Type == "history" })
		cols[c.name] = collect(c)
	}

	// Round 1: alice (node a) and bob (node b) post at the same time.
	const perSender = 40
	var wg sync.WaitGroup
	for _, c := range []*client{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				c.send(fmt.Sprintf("%s %d", c.name, i))
			}
		}()
	}
	wg.Wait()
	const round1 = 2 * perSender
	want := map[uint64]event{}
	for _, m := range cols["alice"].waitN(t, round1) {
		want[m.ID] = m
	}
	for name, col := range cols {
		checkSequence(t, name, col.waitN(t, round1), 1, want)
	}
	// Each sender's messages in the order sent, each once.
	for _, sender := range []string{"alice", "bob"} {
		n := 0
		for id := uint64(1); id <= round1; id++ {
			if m := want[id]; m.User == sender {
				if m.Text != fmt.Sprintf("%s %d", sender, n) {
					t.Fatalf("id %d: %q, want %q next from %s", id, m.Text, fmt.Sprintf("%s %d", sender, n), sender)
				}
				n++
			}
		}
		if n != perSender {
			t.Fatalf("%d messages of %s, want %d", n, sender, perSender)
		}
	}

	// alice deletes one of her messages on node a: the members of both
	// nodes are told, and both nodes' histories lose it.
	var deleted uint64
	for id := uint64(round1); id > 0; id-- {
		if want[id].User == "alice" {
			deleted = id
			break
		}
	}
	if err := alice.conn.WriteJSON(map[string]any{"type": "delete", "id": deleted}); err != nil {
		t.Fatal(err)
	}
	for _, col := range cols {
		col.waitRedact(t, deleted)
	}
	sameHistory(t, "history of both nodes (running)", historyJSON(t, cfgA, a.addr, "lobby"), historyJSON(t, cfgB, b.addr, "lobby"), round1, deleted)

	// Node b stops; node a carries on.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t); code != 0 {
		t.Fatalf("node b exited %d\n%s", code, b.log)
	}
	const round2 = 25
	for i := range round2 {
		alice.send(fmt.Sprintf("while b was down %d", i))
	}
	cols["alice"].waitN(t, round1+round2)
	checkSequence(t, "carol", cols["carol"].waitN(t, round1+round2), 1, nil)

	// Node b returns and catches up before it serves: dave, resuming from
	// the last id he saw, gets exactly the messages he missed.
	b = startChild(t, cfgB)
	if !strings.Contains(b.log.String(), "cluster: caught up") {
		t.Errorf("node b did not say it caught up:\n%s", b.log)
	}
	lastSeen := cols["dave"].waitN(t, round1)[round1-1].ID
	dave2 := dial(t, b.addr, "lobby", "dave", url.Values{"since": {fmt.Sprint(lastSeen)}})
	h := dave2.waitFor("since batch", func(e event) bool { return e.Type == "history" })
	if len(h.Messages) != round2 || h.Messages[0].ID != lastSeen+1 || h.Messages[round2-1].ID != lastSeen+round2 {
		t.Fatalf("dave resumed after %d on node b: %d messages %v, want %d..%d", lastSeen, len(h.Messages), ids(h.Messages), lastSeen+1, lastSeen+round2)
	}
	for i, m := range h.Messages {
		if m.Text != fmt.Sprintf("while b was down %d", i) {
			t.Fatalf("resumed message %d: %+v", i, m)
		}
	}

	// Live again across both: bob posts on the restarted node.
	bob2 := dial(t, b.addr, "lobby", "bob", nil)
	bob2.waitFor("history", func(e event) bool { return e.Type == "history" })
	cols["dave2"] = collect(dave2)
	bob2.send("back")
	const total = round1 + round2 + 1
	for _, name := range []string{"alice", "carol"} {
		got := cols[name].waitN(t, total)
		if m := got[total-1]; m.ID != total || m.User != "bob" || m.Text != "back" {
			t.Fatalf("%s: last message %+v, want bob's \"back\" as %d", name, m, total)
		}
	}
	if got := cols["dave2"].waitN(t, 1); got[0].ID != total || got[0].Text != "back" {
		t.Fatalf("dave on node b: %+v", got)
	}
	sameHistory(t, "history of both nodes after the restart", historyJSON(t, cfgA, a.addr, "lobby"), historyJSON(t, cfgB, b.addr, "lobby"), total, deleted)

	// moonchat cluster status, from each running node.
	for _, n := range []struct {
		name, cfg string
	}{{"node-a", cfgA}, {"node-b", cfgB}} {
		code, stdout, stderr := runCmd(t, "cluster", "status", "-config", n.cfg, "-json")
		var st clusterStatus
		if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil {
			t.Fatalf("cluster status of %s: exit %d\n%s%s", n.name, code, stdout, stderr)
		}
		if st.Node != n.name || !st.Connected || st.Lag == nil || *st.Lag != 0 || st.Applied == 0 || st.Stream != "moonchat" {
			t.Errorf("cluster status of %s: %+v", n.name, st)
		}
		// Both nodes answered, each with its members of lobby (alice and
		// carol on a; bob and dave, back, on b).
		if len(st.Nodes) != 2 || st.Nodes[0].Node != "node-a" || st.Nodes[1].Node != "node-b" {
			t.Fatalf("cluster status of %s lists the nodes %+v", n.name, st.Nodes)
		}
		for _, ns := range st.Nodes {
			if !ns.Connected || ns.Lag == nil || *ns.Lag != 0 || ns.Applied != st.Applied ||
				len(ns.Rooms) != 1 || ns.Rooms[0] != (roomCount{Room: "lobby", Members: 2}) {
				t.Errorf("cluster status of %s: node %+v", n.name, ns)
			}
		}
		code, stdout, stderr = runCmd(t, "cluster", "status", "-config", n.cfg)
		if code != 0 || !hasLine(stdout, "node", n.name) || !hasLine(stdout, "lag", "0", "records") ||
			!hasLine(stdout, "node-a", "connected", fmt.Sprint(st.Applied), "0", fmt.Sprint(st.Nodes[0].Published), "1", "2") ||
			!hasLine(stdout, "lobby", "node-a", "2,", "node-b", "2") {
			t.Errorf("cluster status of %s: exit %d\n%s%s", n.name, code, stdout, stderr)
		}
	}

	// /metrics: the moonchat_cluster_* series of docs/cluster.md.
	checkClusterMetrics(t, a.addr)

	// Both stopped: the files say the same.
	for _, c := range []*child{a, b} {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := c.wait(t); code != 0 {
			t.Fatalf("exit %d\n%s", code, c.log)
		}
	}
	sameHistory(t, "history files of both nodes", historyJSON(t, cfgA, "", "lobby"), historyJSON(t, cfgB, "", "lobby"), total, deleted)
	// A node's file alone cannot be changed: it would no longer be the
	// stream's replica.
	code, _, stderr := runCmd(t, "history", "-config", cfgA, "-room", "lobby", "-delete", "1")
	if code != 1 || !strings.Contains(stderr, "it is a cluster node's replica of the stream") {
		t.Errorf("history -delete on a node's file: exit %d: %s", code, stderr)
	}
}

// checkClusterMetrics: the /metrics of the node at addr has exactly the
// moonchat_cluster_* series the table in docs/cluster.md lists, with their
// types, and the node has applied records and is not behind.
func checkClusterMetrics(t *testing.T, addr string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "| series | type |\n|---|---|\n")
	if !ok {
		t.Fatal("docs/cluster.md: no metrics table (| series | type |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	documented := map[string]string{}
	for row := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(strings.Trim(row, "|"), "|")
		if len(cells) != 2 {
			t.Fatalf("docs/cluster.md: metrics row %q", row)
		}
		for _, span := range docSpan.FindAllStringSubmatch(cells[0], -1) {
			// Other code spans in a description (label values, a
			// bucket's name) are not series; a series' labels are
			// written after it in braces.
			name, _, _ := strings.Cut(span[1], "{")
			if strings.HasPrefix(name, "moonchat_cluster_") {
				documented[name] = strings.TrimSpace(cells[1])
			}
		}
	}
	code, body := httpGet(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE}
	for name, typ := range documented {
		f := fams[name]
		if f == nil {
			t.Errorf("%s (docs/cluster.md) is not in /metrics", name)
		} else if f.GetType() != types[typ] {
			t.Errorf("%s is a %v, documented as %s", name, f.GetType(), typ)
		}
	}
	for name := range fams {
		if _, ok := documented[name]; strings.HasPrefix(name, "moonchat_cluster_") && !ok {
			t.Errorf("%s is in /metrics but not in docs/cluster.md", name)
		}
	}
	value := func(name string) float64 {
		if f := fams[name]; f != nil && len(f.GetMetric()) == 1 {
			m := f.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		t.Fatalf("%s: no single sample", name)
		return 0
	}
	if value("moonchat_cluster_connected") != 1 || value("moonchat_cluster_applied_sequence") == 0 || value("moonchat_cluster_lag") != 0 ||
		value("moonchat_cluster_records_published_total") == 0 {
		t.Errorf("cluster metrics: connected %v applied %v lag %v published %v", value("moonchat_cluster_connected"),
			value("moonchat_cluster_applied_sequence"), value("moonchat_cluster_lag"), value("moonchat_cluster_records_published_total"))
	}
}

// TestClusterDirect (issue 15): a direct message between two accounts on
// different nodes goes through the stream: the recipient gets it on its
// node, the sender on its own, and `moonchat history -direct` reads the
// same conversation on both nodes. (bob signed in on node a once;
// TestClusterSharedState sends to an account that never did.)
func TestClusterDirect(t *testing.T) {
	natsURL := startTestNATS(t)
	withAuth := func(name string) string {
		cfg := clusterNodeConfig(t, natsURL, name)
		f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("[auth]\njwt_secret = \"" + testSecret + "\"\n"); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfgA, cfgB := withAuth("node-a"), withAuth("node-b")
	a := startChild(t, cfgA)
	b := startChild(t, cfgB)
	token := func(sub, name string) url.Values {
		tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": sub, "name": name, "exp": time.Now().Add(time.Hour).Unix()})
		return url.Values{"token": {tok}}
	}
	// bob signs in on node a once (node a learns that u-bob owns "bob"),
	// then lives on node b.
	bobOnA := dial(t, a.addr, "lobby", "bob", token("u-bob", "bob"))
	bobOnA.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	bobOnA.conn.Close()
	bob := dial(t, b.addr, "side", "bob", token("u-bob", "bob"))
	bob.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })
	alice := dial(t, a.addr, "lobby", "alice", token("u-alice", "alice"))
	alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" })

	if err := alice.conn.WriteJSON(map[string]string{"type": "direct", "to": "bob", "text": "across nodes"}); err != nil {
		t.Fatal(err)
	}
	isDM := func(e event) bool { return e.Type == "direct" || e.Type == "error" }
	if e := bob.waitFor("the direct message", isDM); e.Type != "direct" || e.Text != "across nodes" {
		t.Fatalf("bob on node b: %+v", e)
	}
	if e := alice.waitFor("her copy", isDM); e.Type != "direct" || e.Text != "across nodes" {
		t.Fatalf("alice on node a: %+v", e)
	}
	for _, cfg := range []string{cfgA, cfgB} {
		code, stdout, stderr := runCmd(t, "history", "-config", cfg, "-direct", "u-bob", "-with", "u-alice", "-ids")
		if code != 0 || !strings.HasSuffix(stdout, " @dm:u-alice:u-bob #1 alice [u-alice]: across nodes\n") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("%s: history -direct: exit %d\n%s%s", cfg, code, stdout, stderr)
		}
	}
}
