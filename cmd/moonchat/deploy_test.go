package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The nginx deployment of docs/deploy.md, run for real: Debian's nginx in
// front of moonchat on loopback, with the configuration blocks read out of
// the document (so the document stays tested: a block that no longer has
// the lines this test adapts fails it).

// deployDoc is docs/deploy.md, relative to this package's directory.
const deployDoc = "../../docs/deploy.md"

// deployName is the public name of the documented examples.
const deployName = "chat.example.com"

// docBlock returns the fenced code block that follows the line
// "<!-- tested: NAME ...-->" in doc.
func docBlock(t *testing.T, doc, name string) string {
	t.Helper()
	marker := "<!-- tested: " + name + " "
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("%s: no %q marker", deployDoc, marker)
	}
	rest := doc[i:]
	open := strings.Index(rest, "\n```")
	if open < 0 {
		t.Fatalf("%s: no code block after %q", deployDoc, marker)
	}
	rest = rest[open+4:]
	nl := strings.IndexByte(rest, '\n')
	end := strings.Index(rest, "\n```")
	if nl < 0 || end < nl {
		t.Fatalf("%s: unterminated code block after %q", deployDoc, marker)
	}
	return rest[nl+1 : end+1]
}

// adapt replaces each old string of the documented block by its new one,
// failing when one does not occur exactly once: the test runs what the
// document says, with only these machine-specific lines changed.
func adapt(t *testing.T, what, block string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if n := strings.Count(block, pairs[i]); n != 1 {
			t.Fatalf("%s, %s block: %q occurs %d times, want once (update TestNginxDeploy with the document)", deployDoc, what, pairs[i], n)
		}
		block = strings.Replace(block, pairs[i], pairs[i+1], 1)
	}
	return block
}

// nginxBinary finds nginx, installing Debian's package when it is missing
// and this process is root (as in CI, where .ci/run installs it already).
// Without it the test is skipped, except when CI is set: there it fails.
func nginxBinary(t *testing.T) string {
	t.Helper()
	find := func() (string, error) {
		if p, err := exec.LookPath("nginx"); err == nil {
			return p, nil
		}
		return exec.LookPath("/usr/sbin/nginx") // not on a user's PATH
	}
	p, err := find()
	if err != nil && os.Geteuid() == 0 {
		if _, aptErr := exec.LookPath("apt-get"); aptErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			install := func() ([]byte, error) {
				cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "nginx")
				cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
				return cmd.CombinedOutput()
			}
			out, ierr := install()
			if ierr != nil { // a fresh machine has no package lists yet
				if uout, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
					t.Logf("apt-get update: %v\n%s", uerr, uout)
				}
				out, ierr = install()
			}
			if ierr != nil {
				t.Logf("apt-get install nginx: %v\n%s", ierr, out)
			}
			p, err = find()
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nginx not found and could not be installed (CI is set, so this test must run): %v", err)
		}
		t.Skipf("nginx not found (install Debian's nginx, or run as root to let the test install it): %v", err)
	}
	return p
}

// selfSigned writes a self-signed certificate for name and its key into
// dir and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// nginxProc is nginx run by a test in the foreground, one process
// (master_process off), everything it writes under its prefix.
type nginxProc struct {
	addr string // where it listens (loopback, TLS)
	cmd  *exec.Cmd
	done chan struct{}
	log  string // its error log
}

// startNginx runs nginx with the documented site (adapted to listen on a
// loopback port, use the test's certificate and proxy to upstream) and
// waits until it accepts connections. It is stopped when the test ends.
func startNginx(t *testing.T, bin, site, certFile, keyFile, upstream string) *nginxProc {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		p, err := tryNginx(t, bin, site, certFile, keyFile, upstream)
		if err == nil {
			return p
		}
		lastErr = err
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	t.Fatalf("nginx: %v", lastErr)
	return nil
}

func tryNginx(t *testing.T, bin, site, certFile, keyFile, upstream string) (*nginxProc, error) {
	t.Helper()
	prefix := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	site = adapt(t, "nginx-site", site,
		"listen 443 ssl;", "listen "+addr+" ssl;",
		"listen [::]:443 ssl;", "", // the test machine may have no IPv6
		"/etc/letsencrypt/live/chat.example.com/fullchain.pem", certFile,
		"/etc/letsencrypt/live/chat.example.com/privkey.pem", keyFile,
		"proxy_pass http://127.0.0.1:8080;", "proxy_pass http://"+upstream+";",
	)
	if err := os.WriteFile(filepath.Join(prefix, "moonchat.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	// What Debian's /etc/nginx/nginx.conf provides around a site, with
	// every path nginx writes moved under prefix (its compiled-in temp
	// paths are in /var/lib/nginx).
	var temps strings.Builder
	for _, m := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "    %s_temp_path %s;\n", m, filepath.Join(prefix, m))
	}
	errLog := filepath.Join(prefix, "error.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %s;
error_log %s info;
events { worker_connections 256; }
http {
    access_log %s;
%s    include %s;
}
`, filepath.Join(prefix, "nginx.pid"), errLog, filepath.Join(prefix, "access.log"), temps.String(), filepath.Join(prefix, "moonchat.conf"))
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-e", errLog, "-p", prefix+"/", "-c", confFile)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &nginxProc{addr: addr, cmd: cmd, done: make(chan struct{}), log: errLog}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	stop := func() {
		// SIGQUIT: graceful (lets the proxied connections go); SIGKILL if
		// it does not exit in time.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(waitLong):
			_ = cmd.Process.Kill()
			<-p.done
		}
	}
	logs := func() string {
		b, _ := os.ReadFile(errLog)
		return fmt.Sprintf("nginx output:\n%s\nnginx error log:\n%s", out, b)
	}
	deadline := time.Now().Add(waitLong)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("nginx exited: %s", logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("not listening on %s within %v: %s", addr, waitLong, logs())
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Log(logs())
		}
	})
	return p, nil
}

// spoofedAddr is the address every test client claims in its own
// X-Forwarded-For and Forwarded headers.
const spoofedAddr = "198.51.100.7"

// proxyClient dials moonchat through nginx over wss:// from source address
// ip (a 127.0.0.x address), as a browser on the documented site would:
// Host chat.example.com, that name in SNI, its https:// origin (or origin
// when not empty), and claims to be spoofedAddr. It returns the client, or the HTTP status of a refused
// handshake (with its Retry-After).
func proxyClient(t *testing.T, nginxAddr string, roots *x509.CertPool, ip, name, origin string) (c *client, status int, retryAfter string) {
	t.Helper()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitLong}
	d := websocket.Dialer{
		Subprotocols:     []string{"moonchat.v1"},
		HandshakeTimeout: waitLong,
		TLSClientConfig:  &tls.Config{RootCAs: roots, ServerName: deployName},
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return nd.DialContext(ctx, network, nginxAddr)
		},
	}
	if origin == "" {
		origin = "https://" + deployName
	}
	u := url.URL{Scheme: "wss", Host: deployName, Path: "/chat/lobby", RawQuery: url.Values{"name": {name}}.Encode()}
	// Every client also claims another address in both forwarding
	// headers: the documented configuration must not let it choose.
	h := http.Header{
		"Origin":          {origin},
		"X-Forwarded-For": {spoofedAddr},
		"Forwarded":       {"for=" + spoofedAddr},
	}
	conn, resp, err := d.Dial(u.String(), h)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			resp.Body.Close()
			return nil, resp.StatusCode, resp.Header.Get("Retry-After")
		}
		t.Fatalf("%s from %s through nginx: %v", name, ip, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, name: name}, http.StatusSwitchingProtocols, ""
}

// TestNginxDeploy runs the nginx configuration and moonchat settings of
// docs/deploy.md ("Behind nginx"): two clients chat through nginx over
// wss://, a page of another origin is refused, and the per-address limit
// (max_connections_per_address = 2 here, limits_exempt = [] so that the
// proxy's own loopback address is not exempt) counts the client's source
// address behind trusted_proxies (127.0.0.2 over its limit gets 429 while
// 127.0.0.3 connects), and nginx's address for every client without it.
func TestNginxDeploy(t *testing.T) {
	bin := nginxBinary(t)
	docBytes, err := os.ReadFile(deployDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(docBytes)
	site := docBlock(t, doc, "nginx-site")
	settings := docBlock(t, doc, "moonchat-behind-proxy")
	certFile, keyFile, roots := selfSigned(t, t.TempDir(), deployName)

	// The RFC 7239 variant: its map joins the site's, its header line
	// replaces the X-Forwarded-For one.
	fwd := docBlock(t, doc, "nginx-forwarded")
	fwdMap, fwdHeader, ok := strings.Cut(fwd, "# in location / {}:\n")
	if !ok {
		t.Fatalf("%s, nginx-forwarded block: no \"# in location / {}:\" line", deployDoc)
	}
	fwdSite := fwdMap + adapt(t, "nginx-site", site,
		"proxy_set_header X-Forwarded-For $remote_addr;", strings.TrimSpace(fwdHeader))

	// stack starts moonchat with the documented settings (trusted or
	// not, with the X-Forwarded-For site or the Forwarded one) and nginx
	// in front of it, and returns nginx's address.
	stack := func(t *testing.T, trusted, forwarded bool) string {
		dir := t.TempDir()
		cfg := adapt(t, "moonchat-behind-proxy", settings,
			`listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:0"`,
			`path = "/var/lib/moonchat/moonchat.db"`, fmt.Sprintf("path = %q", filepath.Join(dir, "moonchat.db")),
			"[server]\n", "[server]\nmax_connections_per_address = 2\nhandshake_rate = 0\nlimits_exempt = []\nclose_timeout = \"1s\"\n",
		)
		if !trusted {
			cfg = adapt(t, "moonchat-behind-proxy", cfg, `trusted_proxies = ["127.0.0.1/32"]`, `trusted_proxies = []`)
		}
		site := site
		if forwarded {
			cfg = adapt(t, "moonchat-behind-proxy", cfg, `forwarded_header = "X-Forwarded-For"`, `forwarded_header = "Forwarded"`)
			site = fwdSite
		}
		cfgFile := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		srv := startInProcess(t, cfgFile)
		return startNginx(t, bin, site, certFile, keyFile, srv.addr).addr
	}

	t.Run("trusted_proxies", func(t *testing.T) {
		addr := stack(t, true, false)
		alice, st, _ := proxyClient(t, addr, roots, "127.0.0.2", "alice", "")
		if alice == nil {
			t.Fatalf("alice from 127.0.0.2: status %d, want 101", st)
		}
		alice.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == "alice" })
		bob, st, _ := proxyClient(t, addr, roots, "127.0.0.3", "bob", "")
		if bob == nil {
			t.Fatalf("bob from 127.0.0.3: status %d, want 101", st)
		}
		bob.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == "bob" })

		// Messages both ways through nginx.
		alice.send("hello from alice")
		e := bob.waitFor("alice's message", func(e event) bool { return e.Type == "message" && e.Text == "hello from alice" })
		if e.User != "alice" {
			t.Errorf("bob got alice's message from %q", e.User)
		}
		bob.send("hello from bob")
		e = alice.waitFor("bob's message", func(e event) bool { return e.Type == "message" && e.Text == "hello from bob" })
		if e.User != "bob" {
			t.Errorf("alice got bob's message from %q", e.User)
		}

		// 127.0.0.2 holds alice; a second connection fits, a third is
		// over max_connections_per_address = 2.
		if c, st, _ := proxyClient(t, addr, roots, "127.0.0.2", "alice2", ""); c == nil {
			t.Fatalf("second connection from 127.0.0.2: status %d, want 101", st)
		}
		c, st, retry := proxyClient(t, addr, roots, "127.0.0.2", "alice3", "")
		if c != nil || st != http.StatusTooManyRequests || retry == "" {
			t.Fatalf("third connection from 127.0.0.2: status %d, Retry-After %q; want 429 with Retry-After", st, retry)
		}
		// 127.0.0.3 is another client, counted on its own: unaffected.
		bob2, st, _ := proxyClient(t, addr, roots, "127.0.0.3", "bob2", "")
		if bob2 == nil {
			t.Fatalf("second connection from 127.0.0.3 after 127.0.0.2 was refused: status %d, want 101", st)
		}
		bob2.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == "bob2" })
		// And the chat goes on for those already in.
		alice.send("still here")
		bob.waitFor("alice's later message", func(e event) bool { return e.Type == "message" && e.Text == "still here" })

		// A page of another site is refused (403) through nginx, as
		// directly; a new address, so no limit is in the way.
		if c, st, _ := proxyClient(t, addr, roots, "127.0.0.4", "mallory", "https://evil.example"); c != nil || st != http.StatusForbidden {
			t.Fatalf("cross-origin upgrade through nginx: status %d, want 403", st)
		}
	})

	t.Run("no_trusted_proxies", func(t *testing.T) {
		addr := stack(t, false, false)
		// Every client is nginx's 127.0.0.1: two connections from two
		// addresses fill the limit of one, and a third address is refused.
		for i, ip := range []string{"127.0.0.2", "127.0.0.3"} {
			name := fmt.Sprintf("user%d", i)
			c, st, _ := proxyClient(t, addr, roots, ip, name, "")
			if c == nil {
				t.Fatalf("%s from %s: status %d, want 101", name, ip, st)
			}
			c.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == name })
		}
		c, st, retry := proxyClient(t, addr, roots, "127.0.0.4", "user2", "")
		if c != nil || st != http.StatusTooManyRequests || retry == "" {
			t.Fatalf("127.0.0.4 without trusted_proxies: status %d, Retry-After %q; want 429 (counted as nginx's address)", st, retry)
		}
	})

	t.Run("forwarded", func(t *testing.T) {
		// RFC 7239 Forwarded from nginx, forwarded_header = "Forwarded":
		// the same limit per client address.
		addr := stack(t, true, true)
		for _, name := range []string{"carol", "carol2"} {
			c, st, _ := proxyClient(t, addr, roots, "127.0.0.2", name, "")
			if c == nil {
				t.Fatalf("%s from 127.0.0.2: status %d, want 101", name, st)
			}
			c.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == name })
		}
		if c, st, retry := proxyClient(t, addr, roots, "127.0.0.2", "carol3", ""); c != nil || st != http.StatusTooManyRequests || retry == "" {
			t.Fatalf("third connection from 127.0.0.2: status %d, Retry-After %q; want 429 with Retry-After", st, retry)
		}
		dave, st, _ := proxyClient(t, addr, roots, "127.0.0.3", "dave", "")
		if dave == nil {
			t.Fatalf("dave from 127.0.0.3 after 127.0.0.2 was refused: status %d, want 101", st)
		}
		dave.waitFor("welcome", func(e event) bool { return e.Type == "welcome" && e.User == "dave" })
	})
}
