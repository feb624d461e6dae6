package interop

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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

// What TLS costs the engine: memory per idle wss:// connection against
// ws:// (10,000 of each, held by a child process), and broadcast
// throughput over TLS against plain TCP. docs/performance.md reports the
// figures. TLS connections run on the engine's goroutine driver
// (fallback.go says why); plain ones on the epoll loops.

// Environment of the child process that holds the idle connections of
// BenchmarkIdleConnMemoryTLS (see TestMain).
const (
	envIdleTLSAddr = "INTEROP_IDLE_TLS_ADDR"
	envIdleTLSN    = "INTEROP_IDLE_TLS_N"
	// envIdleTLSCert is the server certificate (base64 DER) to trust;
	// empty means plain ws://.
	envIdleTLSCert = "INTEROP_IDLE_TLS_CERT"
)

// idleTLSSources is how many loopback source addresses (127.0.0.1 up)
// the child spreads its connections over, so that runs one after another
// never run short of ephemeral ports.
const idleTLSSources = 8

// tlsBenchServer is a server under benchmark with, over TLS, its
// certificate.
type tlsBenchServer struct {
	benchServer
	cert []byte // DER; nil for plain TCP
}

func startMoonchatTLSBench(b *testing.B, useTLS bool) tlsBenchServer {
	srv, err := ws.NewServer(echoHandler{}, ws.Config{Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	var cert []byte
	if useTLS {
		hs.StartTLS() // tls.NewListener, HTTP/1.1: as moonchat serve does
		cert = hs.Certificate().Raw
	} else {
		hs.Start()
	}
	b.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	return tlsBenchServer{benchServer{addr: hs.Listener.Addr().String(), open: srv.Len}, cert}
}

func startGorillaTLSBench(b *testing.B) tlsBenchServer {
	var open atomic.Int64
	var wg sync.WaitGroup
	up := websocket.Upgrader{}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	hs.StartTLS()
	b.Cleanup(func() {
		hs.Close()
		wg.Wait()
	})
	return tlsBenchServer{benchServer{addr: hs.Listener.Addr().String(), open: func() int { return int(open.Load()) }}, hs.Certificate().Raw}
}

// BenchmarkIdleConnMemoryTLS: what one idle connection costs the server
// (heap in use plus goroutine stacks after GC, per connection), with
// 10,000 connections held by a child process: ws:// on the epoll loops,
// wss:// on the goroutine driver, and gorilla/websocket over wss:// for
// comparison. Each connection did the TLS handshake (TLS 1.3, ECDHE) and
// the upgrade and then stays silent. Measured once per run, like
// BenchmarkIdleConnMemory (b.Loop only re-checks the count).
func BenchmarkIdleConnMemoryTLS(b *testing.B) {
	const n = 10000
	for _, s := range []struct {
		name  string
		start func(*testing.B) tlsBenchServer
	}{
		{"moonchat-ws", func(b *testing.B) tlsBenchServer { return startMoonchatTLSBench(b, false) }},
		{"moonchat-wss", func(b *testing.B) tlsBenchServer { return startMoonchatTLSBench(b, true) }},
		{"gorilla-wss", startGorillaTLSBench},
	} {
		b.Run(s.name, func(b *testing.B) {
			srv := s.start(b)
			held, base := holdIdleTLS(b, srv, n)
			perConn, gPerConn := held.measure()
			var m runtime.MemStats
			runtime.ReadMemStats(&m) // measure ran the GC
			heap := float64(int64(m.HeapInuse)-int64(base.HeapInuse)) / n
			stack := float64(int64(m.StackInuse)-int64(base.StackInuse)) / n
			for b.Loop() {
				if srv.open() != n {
					b.Fatalf("server counts %d connections, want %d held idle", srv.open(), n)
				}
			}
			b.StopTimer()
			held.release()
			b.ReportMetric(perConn, "bytes/conn")
			b.ReportMetric(gPerConn, "goroutines/conn")
			b.ReportMetric(heap, "heap-B/conn")
			b.ReportMetric(stack, "stack-B/conn")
		})
	}
}

// holdIdleTLS is holdIdle for a server that may speak TLS.
// It also returns the memory statistics of the baseline.
func holdIdleTLS(b *testing.B, srv tlsBenchServer, n int) (*idleHold, runtime.MemStats) {
	b.Helper()
	h := &idleHold{n: n}
	// Warm up (event loops, TLS session ticket keys, pools) before the
	// baseline: one connection, closed.
	if err := runIdleTLSClientsN(srv.addr, srv.cert, 1, nil); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	waitFor(b, "warm-up connection to go", func() bool { return srv.open() == 0 })
	h.mem0, h.g0 = settledMem()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envIdleTLSAddr+"="+srv.addr, envIdleTLSN+"="+strconv.Itoa(n),
		envIdleTLSCert+"="+base64.StdEncoding.EncodeToString(srv.cert))
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
			stdin.Close()
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
	return h, base
}

// runIdleTLSClients is the child process of BenchmarkIdleConnMemoryTLS.
func runIdleTLSClients() error {
	n, err := strconv.Atoi(os.Getenv(envIdleTLSN))
	if err != nil {
		return err
	}
	cert, err := base64.StdEncoding.DecodeString(os.Getenv(envIdleTLSCert))
	if err != nil {
		return err
	}
	return runIdleTLSClientsN(os.Getenv(envIdleTLSAddr), cert, n, os.Stdin)
}

// runIdleTLSClientsN opens n connections to addr (TLS when cert is not
// empty, trusting cert), says "ready" and holds them until hold ends (nil:
// closes them at once).
func runIdleTLSClientsN(addr string, cert []byte, n int, hold io.Reader) error {
	var cfg *tls.Config
	if len(cert) > 0 {
		c, err := x509.ParseCertificate(cert)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AddCert(c)
		cfg = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	}
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
				c, err := dialIdleTLS(addr, cfg, net.IPv4(127, 0, 0, byte(1+i%idleTLSSources)))
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
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if firstErr != nil {
		return firstErr
	}
	if hold != nil {
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, hold)
	}
	return nil
}

// dialIdleTLS connects from src, does the TLS handshake when cfg is set,
// and the WebSocket upgrade; it reads exactly the response header.
func dialIdleTLS(addr string, cfg *tls.Config, src net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: eventually, LocalAddr: &net.TCPAddr{IP: src}}
	var c net.Conn
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(eventually))
	if cfg != nil {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	}
	key := base64.StdEncoding.EncodeToString([]byte("idle-client-key!"))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
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
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// broadcastHandler records the server side of each connection.
type broadcastHandler struct{ conns chan *ws.Conn }

func (h broadcastHandler) OnOpen(c *ws.Conn)                   { h.conns <- c }
func (broadcastHandler) OnMessage(*ws.Conn, ws.Opcode, []byte) {}
func (broadcastHandler) OnClose(*ws.Conn, error)               {}

// BenchmarkBroadcastTLS is a chat room's broadcast over wss:// against
// ws://: 100 members, one op is one corpus message (a new Prepared, as
// core/chat builds them) written to all of them AND received by all of
// them (the clients count bytes and the loop waits for them, so
// encryption by the connections' writers is in the time, not only the
// queueing). window=1 waits after every message, as when a room's
// messages come one at a time: every delivery is a write of its own.
// window=64 waits every 64 messages, a burst: queued frames then share
// writes (and, over TLS, records). ns/delivery and deliveries/s are per
// member per message. The clients decrypt in the same process, so both sides' TLS
// shares the two cores: the ratio, not the absolute figure, is the point.
func BenchmarkBroadcastTLS(b *testing.B) {
	corpus := make([][]byte, 1000)
	for i := range corpus {
		corpus[i] = chatLine(60 + i%200)
	}
	for _, tc := range []struct {
		useTLS bool
		window int
	}{{false, 1}, {true, 1}, {false, 64}, {true, 64}} {
		useTLS, window := tc.useTLS, tc.window
		name := "ws"
		if useTLS {
			name = "wss"
		}
		b.Run(fmt.Sprintf("%s/window=%d", name, window), func(b *testing.B) {
			const members = 100
			h := broadcastHandler{conns: make(chan *ws.Conn, members)}
			srv, err := ws.NewServer(h, ws.Config{Logger: quietLogger(b), MaxQueueBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewUnstartedServer(srv)
			var cfg *tls.Config
			if useTLS {
				hs.StartTLS()
				roots := x509.NewCertPool()
				roots.AddCert(hs.Certificate())
				cfg = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
			} else {
				hs.Start()
			}
			b.Cleanup(func() { _ = srv.Close(); hs.Close() })
			addr := hs.Listener.Addr().String()
			var got atomic.Int64
			var readers sync.WaitGroup
			conns := make([]*ws.Conn, 0, members)
			var clients []net.Conn
			b.Cleanup(func() {
				for _, c := range clients {
					c.Close()
				}
				readers.Wait()
			})
			for i := range members {
				c, err := dialIdleTLS(addr, cfg, net.IPv4(127, 0, 0, byte(1+i%idleTLSSources)))
				if err != nil {
					b.Fatal(err)
				}
				readers.Add(1)
				go func() {
					defer readers.Done()
					buf := make([]byte, 32<<10)
					for {
						n, err := c.Read(buf)
						got.Add(int64(n))
						if err != nil {
							return
						}
					}
				}()
				clients = append(clients, c)
				conns = append(conns, <-h.conns)
			}
			var want int64
			wait := func() {
				for got.Load() < want {
					time.Sleep(50 * time.Microsecond)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := corpus[i%len(corpus)]
				p := ws.NewPrepared(ws.OpText, m)
				for _, c := range conns {
					if err := c.WritePrepared(p); err != nil {
						b.Fatal(err)
					}
				}
				hdr := 2
				if len(m) >= 126 {
					hdr = 4 // 16-bit length (RFC 6455 section 5.2)
				}
				want += int64(members * (hdr + len(m)))
				if i%window == window-1 {
					wait()
				}
			}
			wait()
			b.StopTimer()
			d := b.Elapsed()
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N*members), "ns/delivery")
			b.ReportMetric(float64(b.N*members)/d.Seconds(), "deliveries/s")
		})
	}
}
