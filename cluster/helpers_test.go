package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats-server/v2/server"
)

// natsNode is one embedded NATS server of a test, restartable on the same
// port and store directory.
type natsNode struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNATS runs one JetStream server with its store in a temporary
// directory; tweak may change its options. It is shut down at cleanup.
func startNATS(t testing.TB, tweak func(*server.Options)) *natsNode {
	t.Helper()
	n := &natsNode{t: t, opts: server.Options{
		ServerName:         "s1",
		Host:               "127.0.0.1",
		Port:               freePort(t),
		JetStream:          true,
		StoreDir:           t.TempDir(),
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		NoLog:              true,
		NoSigs:             true,
	}}
	if tweak != nil {
		tweak(&n.opts)
	}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsNode) start() {
	n.t.Helper()
	opts := n.opts // the server keeps and changes its copy
	s, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		n.t.Fatal("NATS server not ready")
	}
	n.srv = s
}

// stop shuts the server down and waits until it has (idempotent).
func (n *natsNode) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// startCluster runs a JetStream cluster of size servers on 127.0.0.1.
func startCluster(t testing.TB, size int, tweak func(*server.Options)) []*natsNode {
	t.Helper()
	ports := make([]int, size)
	for i := range ports {
		ports[i] = freePort(t)
	}
	nodes := make([]*natsNode, size)
	for i := range nodes {
		var routes []*url.URL
		for j, p := range ports {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
			}
		}
		i := i
		nodes[i] = startNATS(t, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("s%d", i+1)
			o.Cluster = server.ClusterOpts{Name: "moonchat-test", Host: "127.0.0.1", Port: ports[i]}
			o.Routes = routes
			if tweak != nil {
				tweak(o)
			}
		})
	}
	return nodes
}

// urls is the comma-separated client URL list of nodes.
func urls(nodes []*natsNode) string {
	var u []string
	for _, n := range nodes {
		u = append(u, n.url())
	}
	return strings.Join(u, ",")
}

// testConfig is a Config for url with short waits.
func testConfig(url string) Config {
	return Config{
		URL:            url,
		Node:           "test",
		PublishTimeout: 5 * time.Second,
		ReconnectWait:  50 * time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// openLog opens a Log, retrying while a fresh cluster elects its
// JetStream meta leader (bounded), and closes it at cleanup.
func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := Open(ctx, cfg)
		cancel()
		if err == nil {
			t.Cleanup(func() { l.Close() })
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// msgs makes n messages of user with texts prefix-0, prefix-1, ...
func msgs(user, prefix string, n int) []*chat.Message {
	out := make([]*chat.Message, n)
	for i := range out {
		out[i] = &chat.Message{User: user, Text: fmt.Sprintf("%s-%d", prefix, i), Time: time.Now().UTC()}
	}
	return out
}

// collector runs Consume of l into a channel until the test ends.
type collector struct {
	entries chan Entry
	done    chan error
	cancel  context.CancelFunc
}

func collect(t testing.TB, l *Log, after uint64) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{entries: make(chan Entry, 10000), done: make(chan error, 1), cancel: cancel}
	go func() {
		c.done <- l.Consume(ctx, after, func(e Entry) error {
			c.entries <- e
			return nil
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop ends the Consume and checks that it ended as cancelled.
func (c *collector) stop(t testing.TB) {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	select {
	case err := <-c.done:
		if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed) {
			t.Errorf("Consume ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Consume did not return after its context ended")
	}
}

// messages reads entries until they hold n messages in total (redactions
// are returned too), or fails after timeout.
func (c *collector) messages(t testing.TB, n int, timeout time.Duration) []Entry {
	t.Helper()
	var out []Entry
	got := 0
	deadline := time.After(timeout)
	for got < n {
		select {
		case e := <-c.entries:
			out = append(out, e)
			got += len(e.Msgs)
		case err := <-c.done:
			t.Fatalf("Consume ended early: %v (had %d of %d messages)", err, got, n)
		case <-deadline:
			t.Fatalf("timed out with %d of %d messages", got, n)
		}
	}
	return out
}
