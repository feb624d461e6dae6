package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// The NATS side of the cluster tests (issue 15): a JetStream server in the
// test process, and what a node does when it cannot reach it.

// testNATS is one JetStream server in the test process, restartable on
// the same port and store directory.
type testNATS struct {
	t    *testing.T
	opts natsserver.Options
	srv  *natsserver.Server
}

// startTestNATS runs one JetStream server on a free loopback port with
// its store in a temporary directory, until the test ends. It returns
// the server's client URL.
func startTestNATS(t *testing.T) string {
	return newTestNATS(t).url()
}

func newTestNATS(t *testing.T) *testNATS { return newTestNATSOn(t, "127.0.0.1") }

// newTestNATSOn is newTestNATS listening on host ("0.0.0.0": every
// interface, for a node in another network namespace); url() is always
// the loopback one.
func newTestNATSOn(t *testing.T, host string) *testNATS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &testNATS{t: t, opts: natsserver.Options{
		ServerName:         "test",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           t.TempDir(),
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		NoLog:              true,
		NoSigs:             true,
	}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *testNATS) start() {
	n.t.Helper()
	opts := n.opts // the server keeps and changes its copy
	s, err := natsserver.NewServer(&opts)
	if err != nil {
		n.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(waitLong) {
		s.Shutdown()
		n.t.Fatal("NATS server not ready")
	}
	n.srv = s
}

// stop shuts the server down and waits until it has (idempotent).
func (n *testNATS) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *testNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// TestClusterNATSUnreachable (issue 15): a node whose NATS server cannot
// be reached does not start, and says why and what to do.
func TestClusterNATSUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	dir := t.TempDir()
	cfg := testConfig(t, dir, map[string]string{
		"scripting": fmt.Sprintf("[cluster]\nnats_url = \"nats://moon:s3cret@%s\"\n", addr),
	})
	code, stdout, stderr := runCmd(t, "serve", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "NATS JetStream cannot be reached, so this node cannot share its rooms and does not start") ||
		!strings.Contains(stderr, "nats://***@"+addr) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "s3cret") {
		t.Errorf("the password is in the output:\n%s%s", stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "listening") {
		t.Errorf("it listened:\n%s%s", stdout, stderr)
	}
}

// TestClusterNATSLoss (issue 15): while its NATS server is gone a node
// refuses posts and joins at once with the error code "unavailable" (a
// join closes with 1013) and says so in
// `moonchat cluster status` and /metrics; when the server is back the
// node posts again by itself, with the ids following on.
func TestClusterNATSLoss(t *testing.T) {
	nats := newTestNATS(t)
	cfg := clusterNodeConfig(t, nats.url(), "node-a")
	a := startChild(t, cfg)
	alice := dial(t, a.addr, "lobby", "alice", nil)
	alice.waitFor("history", func(e event) bool { return e.Type == "history" })
	alice.send("before")
	if m := alice.waitFor("her message", func(e event) bool { return e.Type == "message" }); m.ID != 1 {
		t.Fatalf("first message %+v", m)
	}

	nats.stop()
	status := func() clusterStatus {
		t.Helper()
		code, stdout, stderr := runCmd(t, "cluster", "status", "-config", cfg, "-json")
		var st clusterStatus
		if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil {
			t.Fatalf("cluster status: exit %d\n%s%s", code, stdout, stderr)
		}
		return st
	}
	deadline := time.Now().Add(waitLong)
	for status().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the node still says it is connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := status()
	if st.DownSince == nil || st.Lag != nil || st.LagError == "" || st.Disconnects != 1 || st.NodesError == "" || len(st.Nodes) != 0 {
		t.Errorf("status while NATS is down: %+v", st)
	}
	code, stdout, _ := runCmd(t, "cluster", "status", "-config", cfg)
	if code != 0 || !strings.Contains(stdout, "UNREACHABLE since") || !hasLine(stdout, "lag", "unknown:", "cluster:", "NATS", "unavailable") ||
		!hasLine(stdout, "none:", "cluster:", "NATS", "unavailable") {
		t.Errorf("cluster status while NATS is down: exit %d\n%s", code, stdout)
	}
	_, body := httpGet(t, "http://"+a.addr+"/metrics")
	if !strings.Contains(body, "\nmoonchat_cluster_connected 0\n") || strings.Contains(body, "\nmoonchat_cluster_lag ") {
		t.Errorf("/metrics while NATS is down:\n%s", grepLines(body, "moonchat_cluster_"))
	}
	alice.send("while down")
	e := alice.waitFor("the refusal", func(e event) bool { return e.Type == "error" || e.Type == "message" })
	if e.Type != "error" || e.Code != "unavailable" {
		t.Fatalf("a post while NATS is down: %+v, want an error with code unavailable", e)
	}
	// A join is refused too: its name cannot be claimed for the cluster.
	bob := dial(t, a.addr, "lobby", "bob", nil)
	var codes []string
	for {
		e, err := bob.next()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseTryAgainLater) || !slices.Contains(codes, "unavailable") {
				t.Fatalf("a join while NATS is down: events %v, then %v; want an error unavailable and close 1013", codes, err)
			}
			break
		}
		if e.Type == "welcome" {
			t.Fatalf("bob joined while NATS is down: %+v", e)
		}
		codes = append(codes, e.Code)
	}

	nats.start()
	deadline = time.Now().Add(waitLong)
	for !status().Connected {
		if time.Now().After(deadline) {
			t.Fatal("the node did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	alice.send("after")
	if m := alice.waitFor("her message", func(e event) bool { return e.Type == "message" }); m.ID != 2 || m.Text != "after" {
		t.Fatalf("after NATS came back: %+v, want \"after\" as 2", m)
	}
	bob = dial(t, a.addr, "lobby", "bob", nil)
	if e := bob.waitFor("welcome", func(e event) bool { return e.Type == "welcome" || e.Type == "error" }); e.Type != "welcome" || e.User != "bob" {
		t.Fatalf("a join after NATS came back: %+v", e)
	}
	if !strings.Contains(a.log.String(), "cluster: this node accepts posts again") {
		t.Errorf("no recovery in the log:\n%s", a.log)
	}
}

// TestClusterDocConfigs: the sample nats-server.conf and [cluster] section
// of docs/cluster.md ("Three nodes on three machines") are what the text
// says: nats-server's own parser reads a JetStream server with
// sync_interval always in a three-route cluster, and moonchat loads the
// [cluster] section with three URLs and replicas = 3.
func TestClusterDocConfigs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "### Three nodes on three machines\n")
	if !ok {
		t.Fatal("docs/cluster.md: no section Three nodes on three machines")
	}
	_, rest, _ := strings.Cut(sec, "\n```\n")
	natsConf, rest, _ := strings.Cut(rest, "\n```\n")
	_, rest, _ = strings.Cut(rest, "\n```toml\n")
	moonConf, _, _ := strings.Cut(rest, "\n```\n")
	if natsConf == "" || moonConf == "" {
		t.Fatalf("docs/cluster.md: the two samples not found in:\n%s", sec)
	}

	p := filepath.Join(t.TempDir(), "nats-server.conf")
	if err := os.WriteFile(p, []byte(natsConf+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := natsserver.ProcessConfigFile(p)
	if err != nil {
		t.Fatalf("nats-server.conf of docs/cluster.md: %v\n%s", err, natsConf)
	}
	if !o.JetStream || !o.SyncAlways || o.StoreDir == "" || o.Port != 4222 || o.Cluster.Name != "moonchat" || o.Cluster.Port != 6222 || len(o.Routes) != 3 {
		t.Errorf("nats-server.conf of docs/cluster.md: jetstream %v sync always %v store %q port %d cluster %q:%d routes %v",
			o.JetStream, o.SyncAlways, o.StoreDir, o.Port, o.Cluster.Name, o.Cluster.Port, o.Routes)
	}

	cfg, err := loadConfig(writeConfig(t, moonConf+"\n"))
	if err != nil {
		t.Fatalf("[cluster] of docs/cluster.md: %v", err)
	}
	if lc := clusterLogConfig(cfg, nil); strings.Count(lc.URL, "nats://") != 3 || lc.Replicas != 3 {
		t.Errorf("[cluster] of docs/cluster.md: %+v", lc)
	}
}
