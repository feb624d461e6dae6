package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Tests that kill a NATS server for real (SIGKILL: no flush, no goodbye)
// run it in a child process: this test binary again, which serves as a
// NATS server when childEnv is set (TestMain) and exits when its stdin
// closes, so that no child outlives the test.
const childEnv = "MOONCHAT_CLUSTER_TEST_NATS"

// childSpec is what a child server runs. Ports 0 are chosen by the
// system at the first start (no port is guessed free, then taken by
// someone else first) and kept for restarts.
type childSpec struct {
	Name, StoreDir    string
	Port, ClusterPort int
	Clustered         bool
	Routes            []string
	SyncAlways        bool
}

func orRandom(port int) int {
	if port == 0 {
		return -1
	}
	return port
}

func clusterPort(s *server.Server) int {
	if a := s.ClusterAddr(); a != nil {
		return a.Port
	}
	return 0
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild runs the server spec describes until stdin closes.
func runChild(spec string) int {
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts := &server.Options{
		ServerName: c.Name, Host: "127.0.0.1", Port: orRandom(c.Port),
		JetStream: true, StoreDir: c.StoreDir, JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30,
		SyncAlways: c.SyncAlways, NoLog: true, NoSigs: true,
	}
	if c.Clustered {
		opts.Cluster = server.ClusterOpts{Name: "moonchat-test", Host: "127.0.0.1", Port: orRandom(c.ClusterPort)}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		fmt.Fprintln(os.Stderr, "not ready")
		return 2
	}
	fmt.Println("ready", s.Addr().(*net.TCPAddr).Port, clusterPort(s))
	io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	s.Shutdown()
	return 0
}

// childNATS is a NATS server in a child process.
type childNATS struct {
	t     testing.TB
	spec  childSpec
	cmd   *exec.Cmd
	stdin io.WriteCloser
	read  chan struct{} // closed when the child's stdout is drained
}

func (c *childNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.spec.Port) }

// startChild starts (or restarts, same spec) c and waits until it serves.
func (c *childNATS) start() {
	c.t.Helper()
	spec, _ := json.Marshal(c.spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd, c.stdin, c.read = cmd, stdin, make(chan struct{})
	ready := make(chan bool, 1)
	go func() { // ends when the child's stdout closes (it exits); kill waits for it
		defer close(c.read)
		sc := bufio.NewScanner(stdout)
		var p, cp int
		ok := false
		if sc.Scan() {
			_, err := fmt.Sscanf(sc.Text(), "ready %d %d", &p, &cp)
			ok = err == nil
		}
		if ok {
			c.spec.Port, c.spec.ClusterPort = p, cp
		}
		ready <- ok
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			c.kill()
			c.t.Fatalf("child NATS %s did not start", c.spec.Name)
		}
	case <-time.After(30 * time.Second):
		c.kill()
		c.t.Fatalf("child NATS %s not ready", c.spec.Name)
	}
}

// kill sends SIGKILL and waits for the process (idempotent).
func (c *childNATS) kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	c.stdin.Close()
	<-c.read // before Wait, which closes the pipe
	c.cmd.Wait()
	c.cmd = nil
}

// startChildren starts n child servers: one alone, or a cluster, each
// server routing to all the others. The ports are reserved (listened on)
// until just before their server starts, so that nothing else on the
// machine takes them in between.
func startChildren(t testing.TB, n int, syncAlways bool) []*childNATS {
	t.Helper()
	cs := make([]*childNATS, n)
	held := make([][]net.Listener, n)
	for i := range cs {
		cs[i] = &childNATS{t: t, spec: childSpec{Name: fmt.Sprintf("c%d", i+1), StoreDir: t.TempDir(), Clustered: n > 1, SyncAlways: syncAlways}}
		var ports []int
		for range map[bool]int{false: 1, true: 2}[n > 1] {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			held[i] = append(held[i], ln)
			ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		}
		cs[i].spec.Port = ports[0]
		if n > 1 {
			cs[i].spec.ClusterPort = ports[1]
		}
	}
	for i, c := range cs {
		for j, o := range cs {
			if j != i && n > 1 {
				c.spec.Routes = append(c.spec.Routes, fmt.Sprintf("nats://127.0.0.1:%d", o.spec.ClusterPort))
			}
		}
	}
	t.Cleanup(func() {
		for _, h := range held {
			for _, ln := range h {
				ln.Close()
			}
		}
	})
	for i, c := range cs {
		for _, ln := range held[i] {
			ln.Close()
		}
		c.start()
		t.Cleanup(c.kill)
	}
	return cs
}
