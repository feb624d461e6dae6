package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// The baseline of the side-by-side benchmark: a one-room broadcast server
// on github.com/lxzan/gws, written the way gws's own chat and broadcast
// examples are (gws.NewBroadcaster encodes each message once, one frame
// per message), speaking our plain format ("NICK: TEXT" lines) so the same
// load tool drives both servers. It runs in a child process (this test
// binary re-executed) so that it shares neither the scheduler nor the
// garbage collector with the load generator.

// gwsHelperEnv names the file the helper writes its address to. When it is
// set, the test binary is the helper: TestMain serves gws instead of
// running tests.
const gwsHelperEnv = "LOADGEN_GWS_HELPER_ADDR_FILE"

// TestMain runs the gws baseline server when the binary was started as
// its helper (startGWS), and the tests otherwise.
func TestMain(m *testing.M) {
	if addrFile := os.Getenv(gwsHelperEnv); addrFile != "" {
		if err := serveGWS(addrFile); err != nil {
			fmt.Fprintln(os.Stderr, "gws helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// gwsRoom is the one room: every member, by connection.
type gwsRoom struct {
	mu      sync.RWMutex
	members map[*gws.Conn]string // connection → nickname
}

func (g *gwsRoom) OnOpen(c *gws.Conn) {
	name, _ := c.Session().Load("name")
	g.mu.Lock()
	g.members[c] = name.(string)
	g.mu.Unlock()
}

func (g *gwsRoom) OnClose(c *gws.Conn, err error) {
	g.mu.Lock()
	delete(g.members, c)
	g.mu.Unlock()
}

func (g *gwsRoom) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }
func (g *gwsRoom) OnPong(c *gws.Conn, payload []byte) {}

// OnMessage writes "NICK: TEXT" to every member, encoded once.
func (g *gwsRoom) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	if msg.Opcode != gws.OpcodeText {
		return
	}
	g.mu.RLock()
	name := g.members[c]
	line := make([]byte, 0, len(name)+2+msg.Data.Len())
	line = append(append(append(line, name...), ": "...), msg.Bytes()...)
	b := gws.NewBroadcaster(gws.OpcodeText, line)
	for m := range g.members {
		_ = b.Broadcast(m)
	}
	g.mu.RUnlock()
	_ = b.Close()
}

// serveGWS is the gws baseline server process: it writes its address to
// addrFile and serves until its stdin closes (the parent exited) or it
// gets SIGTERM.
func serveGWS(addrFile string) error {
	room := &gwsRoom{members: make(map[*gws.Conn]string)}
	up := gws.NewUpgrader(room, &gws.ServerOption{
		Authorize: func(r *http.Request, s gws.SessionStorage) bool {
			name := r.URL.Query().Get("name")
			if name == "" {
				name = "guest"
			}
			s.Store("name", name)
			return true
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if err := os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o600); err != nil {
		return fmt.Errorf("write address: %w", err)
	}
	if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
		return fmt.Errorf("write address: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
	return nil
}

// childServer is a server process started by a test.
type childServer struct {
	cmd   *exec.Cmd
	addr  string
	stdin io.WriteCloser
	done  chan struct{}
}

// startChild starts cmd, which must write its listen address to addrFile,
// and waits up to 30s for it. The child's stdin is a pipe: closing it
// tells helpers to exit.
func startChild(t testing.TB, cmd *exec.Cmd, addrFile string) *childServer {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	c := &childServer{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			c.addr = strings.TrimSpace(string(b))
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("%v exited before listening", cmd.Args)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: no address in %s after 30s", cmd.Args, addrFile)
		}
	}
}

// stop asks the child to exit (SIGTERM, stdin closed) and kills it after
// 10s.
func (c *childServer) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.stdin.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// startGWS starts the gws baseline in a child process.
func startGWS(t testing.TB) *childServer {
	t.Helper()
	addrFile := t.TempDir() + "/gws.addr"
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), gwsHelperEnv+"="+addrFile)
	cmd.Stderr = os.Stderr
	return startChild(t, cmd, addrFile)
}

// TestAgainstGWS runs a short load against the gws baseline: the tool
// works with a server that is not ours, and the baseline works.
func TestAgainstGWS(t *testing.T) {
	srv := startGWS(t)
	cfg := Config{
		URL: "ws://" + srv.addr + "/", Clients: 20, Senders: 4, Window: 8,
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, PID: srv.cmd.Process.Pid,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanRun(t, sum, 20)
	if sum.Server == nil || sum.Server.RSSBytes <= 0 {
		t.Errorf("server stats missing: %+v", sum.Server)
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// checkCleanRun asserts a load run delivered everything it sent.
func checkCleanRun(t *testing.T, sum *Summary, clients int) {
	t.Helper()
	if sum.Connections != clients {
		t.Errorf("connections = %d, want %d (errors %v)", sum.Connections, clients, sum.Errors)
	}
	if sum.MessagesSent == 0 || sum.Deliveries == 0 {
		t.Errorf("nothing measured: sent %d, deliveries %d", sum.MessagesSent, sum.Deliveries)
	}
	if sum.Lost != 0 || sum.Reordered != 0 || sum.Disconnects != 0 {
		t.Errorf("lost %d, reordered %d, disconnects %d; errors %v", sum.Lost, sum.Reordered, sum.Disconnects, sum.Errors)
	}
	if len(sum.Errors) > 0 {
		t.Errorf("errors: %v", sum.Errors)
	}
	if sum.Latency.P50 <= 0 || sum.Latency.P99 < sum.Latency.P50 || sum.Latency.Max < sum.Latency.P99 {
		t.Errorf("implausible latency %+v", sum.Latency)
	}
}
