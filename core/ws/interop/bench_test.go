package interop

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/moonchat/moonchat/core/ws"
)

// Environment variables that turn the test binary into the client child
// process of BenchmarkIdleConnMemory or BenchmarkEcho.
const (
	envIdleAddr = "INTEROP_IDLE_CLIENT_ADDR"
	envIdleN    = "INTEROP_IDLE_CLIENT_N"
	// envIdleDeflate makes the idle clients offer permessage-deflate and
	// send one compressed message before going idle.
	envIdleDeflate = "INTEROP_IDLE_CLIENT_DEFLATE"
	envEchoURL     = "INTEROP_ECHO_CLIENT_URL"
	envEchoSize    = "INTEROP_ECHO_CLIENT_SIZE"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envIdleAddr); addr != "" {
		n, _ := strconv.Atoi(os.Getenv(envIdleN))
		if err := runIdleClients(addr, n, os.Getenv(envIdleDeflate) != ""); err != nil {
			fmt.Fprintln(os.Stderr, "idle clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envIdleTLSAddr) != "" { // tls_bench_test.go
		if err := runIdleTLSClients(); err != nil {
			fmt.Fprintln(os.Stderr, "idle TLS clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if url := os.Getenv(envEchoURL); url != "" {
		size, _ := strconv.Atoi(os.Getenv(envEchoSize))
		if err := runEchoClient(url, size); err != nil {
			fmt.Fprintln(os.Stderr, "echo client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// echoHandler is the leanest echo Handler (the recorder's bookkeeping would
// be measured along with the engine otherwise).
type echoHandler struct{}

func (echoHandler) OnOpen(*ws.Conn)                                 {}
func (echoHandler) OnMessage(c *ws.Conn, op ws.Opcode, data []byte) { _ = c.WriteMessage(op, data) }
func (echoHandler) OnClose(*ws.Conn, error)                         {}

// benchServer is an echo server under benchmark: its address and a count of
// open WebSocket connections as the server sees them.
type benchServer struct {
	addr string
	open func() int
	// deflate: the server negotiates permessage-deflate, and idle clients
	// offer it and send one compressed message before going idle.
	deflate bool
}

func startMoonchat(b *testing.B) benchServer {
	return startMoonchatWith(b, ws.Config{Logger: quietLogger(b)})
}

func startMoonchatDeflate(b *testing.B) benchServer {
	s := startMoonchatWith(b, ws.Config{Logger: quietLogger(b), Compression: true})
	s.deflate = true
	return s
}

func startMoonchatWith(b *testing.B, cfg ws.Config) benchServer {
	srv, err := ws.NewServer(echoHandler{}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	return benchServer{addr: hs.Listener.Addr().String(), open: srv.Len}
}

func startGorilla(b *testing.B) benchServer {
	return startGorillaWith(b, websocket.Upgrader{}) // defaults, as most gorilla servers run
}

func startGorillaDeflate(b *testing.B) benchServer {
	s := startGorillaWith(b, websocket.Upgrader{EnableCompression: true})
	s.deflate = true
	return s
}

func startGorillaWith(b *testing.B, up websocket.Upgrader) benchServer {
	var open atomic.Int64
	var wg sync.WaitGroup
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		open.Add(1)
		defer open.Add(-1)
		defer c.Close()
		for {
			op, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(op, p); err != nil {
				return
			}
		}
	}))
	b.Cleanup(func() {
		hs.Close()
		wg.Wait()
	})
	return benchServer{addr: hs.Listener.Addr().String(), open: func() int { return int(open.Load()) }}
}

type namedServer struct {
	name  string
	start func(*testing.B) benchServer
}

var benchServers = []namedServer{
	{"moonchat", startMoonchat},
	{"gorilla", startGorilla},
}

// deflateServers are the same servers with permessage-deflate negotiated
// (idle memory: what a compressed connection costs once it has carried a
// compressed message each way).
var deflateServers = []namedServer{
	{"moonchat-deflate", startMoonchatDeflate},
	{"gorilla-deflate", startGorillaDeflate},
}

// BenchmarkEcho: one gorilla client, one op = one message round trip.
//
// The client runs in a child process (this test binary re-executed with
// envEchoURL set, see TestMain): in the same process, a goroutine-per-conn
// server and its client share the Go scheduler and netpoller (one thread
// wakes both sides), which favours gorilla over an engine whose event loops
// sleep in epoll_wait on threads of their own; across processes both pay
// the same kernel wake-ups, as real clients do. The parent times b.N round
// trips: it tells the child N on stdin and waits for its "ok".
func BenchmarkEcho(b *testing.B) {
	for _, s := range benchServers {
		b.Run(s.name, func(b *testing.B) {
			srv := s.start(b)
			for _, size := range []int{64, 16 << 10} {
				b.Run(sizeName(size), func(b *testing.B) {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
					defer cancel()
					cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
					cmd.Env = append(os.Environ(), envEchoURL+"=ws://"+srv.addr+"/", envEchoSize+"="+strconv.Itoa(size))
					cmd.Stderr = os.Stderr
					stdin, err := cmd.StdinPipe()
					if err != nil {
						b.Fatal(err)
					}
					stdoutPipe, err := cmd.StdoutPipe()
					if err != nil {
						b.Fatal(err)
					}
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					defer func() {
						stdin.Close()
						if err := cmd.Wait(); err != nil {
							b.Errorf("echo client process: %v", err)
						}
					}()
					stdout := bufio.NewReader(stdoutPipe)
					if line, err := stdout.ReadString('\n'); err != nil || line != "ready\n" {
						b.Fatalf("echo client: %q %v", line, err)
					}
					b.SetBytes(int64(size))
					b.ResetTimer()
					if _, err := fmt.Fprintf(stdin, "%d\n", b.N); err != nil {
						b.Fatal(err)
					}
					line, err := stdout.ReadString('\n')
					b.StopTimer()
					if err != nil || line != "ok\n" {
						b.Fatalf("echo client: %q %v", line, err)
					}
				})
			}
		})
	}
}

// runEchoClient (child process) dials url with gorilla and, for each count
// n read from stdin, does n round trips of size-byte binary messages and
// prints "ok".
func runEchoClient(url string, size int) error {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := payload(size, false, 1)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(in.Text())
		if err != nil {
			return err
		}
		for range n {
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				return err
			}
			if _, p, err := c.ReadMessage(); err != nil || len(p) != size {
				return fmt.Errorf("echo: %d bytes, %v", len(p), err)
			}
		}
		fmt.Println("ok")
	}
	return in.Err()
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkIdleConnMemory measures what one idle upgraded connection costs
// the SERVER: heap in use plus goroutine stacks, after GC, divided by the
// number of connections.
//
// Method: the clients live in a child process (this test binary re-executed
// with envIdleAddr set, see TestMain) so that nothing they allocate is
// counted. Each child connection does the opening handshake by hand and then
// stays silent. The parent reads runtime.MemStats (HeapInuse+StackInuse)
// after GC before the child starts and again once the server reports every
// connection open and they have been idle for a moment; the difference over N
// is reported as bytes/conn (goroutines/conn likewise). The HTTP server's
// accept loop and the engine's event loops exist before the baseline, so only
// per-connection cost is counted.
//
// The measurement is done exactly once per benchmark invocation, whatever
// -benchtime says: it is a state (N connections held open), not an operation
// that repeats. The function uses b.Loop, so the testing package calls it
// once instead of re-running the whole 2,000-connection setup at every b.N
// growth step (which took minutes, because the setup ran with the timer
// stopped and so b.N kept growing). The timed loop only checks, while the
// connections are still held, that the server still counts all of them, so
// ns/op is the cost of Server.Len and not a figure of interest.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	for _, s := range append(benchServers[:len(benchServers):len(benchServers)], deflateServers...) {
		b.Run(s.name, func(b *testing.B) {
			srv := s.start(b)
			held := holdIdle(b, srv, n)
			perConn, gPerConn := held.measure()
			for b.Loop() {
				if srv.open() != n {
					b.Fatalf("server counts %d connections, want %d held idle", srv.open(), n)
				}
			}
			b.StopTimer()
			held.release()
			b.ReportMetric(perConn, "bytes/conn")
			b.ReportMetric(gPerConn, "goroutines/conn")
		})
	}
}

func settledMem() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
}

// idleHold is n idle client connections held open by a child process,
// with the server's memory baseline taken before the child started.
type idleHold struct {
	n       int
	mem0    uint64
	g0      int
	release func()
}

// holdIdle takes the baseline, starts the child with n connections and
// waits until the server counts them all. release (also registered as a
// cleanup, so a failed benchmark does not leak the child) makes the child
// close them and waits until the server has seen them go.
func holdIdle(b *testing.B, srv benchServer, n int) *idleHold {
	b.Helper()
	h := &idleHold{n: n}
	warmUp(b, srv)
	h.mem0, h.g0 = settledMem()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envIdleAddr+"="+srv.addr, envIdleN+"="+strconv.Itoa(n))
	if srv.deflate {
		cmd.Env = append(cmd.Env, envIdleDeflate+"=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatal(err)
	}
	var once sync.Once
	h.release = func() {
		once.Do(func() {
			defer cancel()
			stdin.Close() // the child closes its connections and exits on EOF
			if err := cmd.Wait(); err != nil {
				b.Errorf("idle client process: %v", err)
			}
			waitFor(b, "server to see the idle clients go", func() bool { return srv.open() == 0 })
		})
	}
	b.Cleanup(h.release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("idle clients: %q %v", line, err)
	}
	waitFor(b, fmt.Sprintf("server to see %d connections", n), func() bool { return srv.open() == n })
	return h
}

// warmUp opens and closes one connection so that what a server creates on
// first use (the engine starts its event loops and their read buffers
// lazily) is in the baseline rather than charged to the measured
// connections.
func warmUp(b *testing.B, srv benchServer) {
	b.Helper()
	c, err := dialRaw(srv.addr)
	if err != nil {
		b.Fatalf("warm-up connection: %v", err)
	}
	waitFor(b, "server to see the warm-up connection", func() bool { return srv.open() == 1 })
	c.Close()
	waitFor(b, "server to see the warm-up connection go", func() bool { return srv.open() == 0 })
}

// measure returns the server's heap+stack growth and goroutine growth per
// held connection, after a moment of idleness (any post-handshake work
// finishes first).
func (h *idleHold) measure() (bytesPerConn, goroutinesPerConn float64) {
	time.Sleep(200 * time.Millisecond)
	mem1, g1 := settledMem()
	return float64(int64(mem1)-int64(h.mem0)) / float64(h.n), float64(g1-h.g0) / float64(h.n)
}

// runIdleClients (child process) opens n WebSocket connections to addr with
// a hand-written handshake (offering permessage-deflate and sending one
// compressed message when deflate is set), reports "ready", and holds them
// until stdin ends.
func runIdleClients(addr string, n int, deflate bool) error {
	conns := make([]net.Conn, n)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		errMu    sync.Mutex
		firstErr error
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				var c net.Conn
				var err error
				if deflate {
					c, err = dialRawDeflate(addr)
				} else {
					c, err = dialRaw(addr)
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return firstErr
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func dialRaw(addr string) (net.Conn, error) {
	return dialRawWith(addr, "")
}

// idleDeflateMsg is the compressed message each deflate idle client sends
// (RFC 7692 section 7.2.1: sync-flushed, 00 00 ff ff removed).
var idleDeflateMsg = func() []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(chatLine(200))
	_ = w.Flush()
	return b.Bytes()[:b.Len()-4]
}()

// dialRawDeflate is dialRaw offering permessage-deflate, which must be
// accepted, and then sending one compressed text message (its echo is
// left unread: it costs the client, not the server).
func dialRawDeflate(addr string) (net.Conn, error) {
	c, err := dialRawWith(addr, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
	if err != nil {
		return nil, err
	}
	f := ws.AppendClientFrame(nil, ws.OpText, idleDeflateMsg, ws.NewMaskKey())
	f[0] |= 0x40 // RSV1: compressed (RFC 7692 section 6)
	if _, err := c.Write(f); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func dialRawWith(addr, extra string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, eventually)
	if err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString([]byte("idle-client-key!"))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	_ = c.SetDeadline(time.Now().Add(eventually))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	// Read exactly the response header so no frame bytes are consumed.
	var hdr strings.Builder
	one := make([]byte, 1)
	for !strings.HasSuffix(hdr.String(), "\r\n\r\n") {
		if _, err := c.Read(one); err != nil {
			c.Close()
			return nil, fmt.Errorf("handshake response: %w", err)
		}
		hdr.WriteByte(one[0])
		if hdr.Len() > 4096 {
			c.Close()
			return nil, fmt.Errorf("handshake response too long")
		}
	}
	if !strings.HasPrefix(hdr.String(), "HTTP/1.1 101") {
		c.Close()
		return nil, fmt.Errorf("handshake refused: %q", strings.SplitN(hdr.String(), "\r\n", 2)[0])
	}
	if extra != "" && !strings.Contains(hdr.String(), "permessage-deflate") {
		c.Close()
		return nil, fmt.Errorf("permessage-deflate not negotiated: %q", hdr.String())
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
