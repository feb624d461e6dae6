package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
)

// testCA is a certificate authority made for one test: it issues ECDSA
// leaf certificates for localhost and 127.0.0.1 with chosen serials.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "moonchat test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns PEM certificate and key for localhost/127.0.0.1 with the
// given serial, valid from notBefore to notAfter.
func (ca *testCA) issue(t *testing.T, serial int64, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeCert installs a certificate and key the way renewal tools do:
// each file written beside its place and renamed over it (key first).
func writeCert(t *testing.T, certFile, keyFile string, certPEM, keyPEM []byte) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// tlsClient is a moonchat.v1 client over wss:// and the serial number of
// the certificate the server showed it.
type tlsClient struct {
	*client
	serial string
}

func dialTLS(t *testing.T, addr string, roots *x509.CertPool, room, name string) *tlsClient {
	t.Helper()
	u := url.URL{Scheme: "wss", Host: addr, Path: "/chat/" + room, RawQuery: url.Values{"name": {name}}.Encode()}
	d := websocket.Dialer{
		Subprotocols:     []string{"moonchat.v1"},
		HandshakeTimeout: waitLong,
		TLSClientConfig:  &tls.Config{RootCAs: roots, ServerName: "localhost"},
	}
	conn, resp, err := d.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", u.String(), err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	tc, ok := conn.NetConn().(*tls.Conn)
	if !ok {
		t.Fatalf("%s: not a TLS connection: %T", name, conn.NetConn())
	}
	st := tc.ConnectionState()
	if st.Version < tls.VersionTLS12 {
		t.Fatalf("%s: TLS version %x", name, st.Version)
	}
	return &tlsClient{client: &client{t: t, conn: conn, name: name}, serial: st.PeerCertificates[0].SerialNumber.String()}
}

// chatBothWays checks that a and b, in the same room, hear each other.
func chatBothWays(t *testing.T, a, b *tlsClient, tag string) {
	t.Helper()
	for _, p := range [][2]*tlsClient{{a, b}, {b, a}} {
		text := fmt.Sprintf("%s from %s", tag, p[0].name)
		p[0].send(text)
		p[1].waitFor(text, func(e event) bool { return e.Type == "message" && e.Text == text })
	}
}

// waitLog waits until the child's log contains s.
func waitLog(t *testing.T, c *child, s string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !strings.Contains(c.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLSCertReloadSIGHUP: the binary serves https:// and wss:// on one
// listener with [server] tls_cert/tls_key; SIGHUP swaps the certificate
// without dropping anyone: a connection made before the swap keeps
// chatting with one made after it, which sees the new certificate (leaf
// serial). A broken file on the next SIGHUP keeps the certificate in use
// and says why.
func TestTLSCertReloadSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := ca.issue(t, 1001, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c1, k1)
	// Relative to the config file's directory, like [store] path.
	cfg := testConfig(t, dir, map[string]string{"server": "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"})
	srv := startChild(t, cfg)
	waitLog(t, srv, "url=https://")

	// https:// pages on the same listener, over HTTP/1.1 even to a
	// client that offers h2.
	hc := &http.Client{Timeout: waitLong, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: "localhost"},
		ForceAttemptHTTP2: true,
	}}
	resp, err := hc.Get("https://" + srv.addr + "/")
	if err != nil {
		t.Fatalf("GET https: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.ProtoMajor != 1 || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("GET https://: %s, TLS %v, %s", resp.Status, resp.TLS != nil, resp.Proto)
	}
	hc.CloseIdleConnections()
	// Plain HTTP on the TLS port: 400, not served.
	if code, _ := httpGet(t, "http://"+srv.addr+"/"); code != http.StatusBadRequest {
		t.Fatalf("plain http:// on the TLS port: %d", code)
	}

	alice := dialTLS(t, srv.addr, ca.pool, "lobby", "alice")
	if alice.serial != "1001" {
		t.Fatalf("alice sees serial %s, want 1001", alice.serial)
	}

	c2, k2 := ca.issue(t, 2002, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c2, k2)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, srv, "serial=7d2") // 2002 in hex, in the "reloaded" line
	if !strings.Contains(srv.log.String(), `msg="TLS certificate reloaded" why=SIGHUP`) {
		t.Fatalf("reload not logged as such:\n%s", srv.log)
	}
	bob := dialTLS(t, srv.addr, ca.pool, "lobby", "bob")
	if bob.serial != "2002" {
		t.Fatalf("bob (after the swap) sees serial %s, want 2002", bob.serial)
	}
	chatBothWays(t, alice, bob, "after the swap")

	// A broken certificate file: the reload fails, the certificate in use
	// stays, the log says why.
	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, srv, "TLS certificate not reloaded: still serving the previous one")
	carol := dialTLS(t, srv.addr, ca.pool, "lobby", "carol")
	if carol.serial != "2002" {
		t.Fatalf("after a failed reload carol sees serial %s, want 2002", carol.serial)
	}
	chatBothWays(t, alice, carol, "after the failed reload")

	// SIGTERM: the TLS connections get their close frame (1001) and the
	// server exits cleanly.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*tlsClient{alice, bob, carol} {
		for {
			_, err := c.next()
			if err == nil {
				continue
			}
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("%s: %v, want close 1001", c.name, err)
			}
			break
		}
	}
	if code := srv.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestCertHolderFileChange: the poll reloads when the files change (no
// signal), a change that does not load (a key that does not match, an
// expired certificate) keeps the certificate in use, is counted as failed
// and reported once, and the next good change is taken.
func TestCertHolderFileChange(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	now := time.Now()
	c1, k1 := ca.issue(t, 11, now.Add(-time.Hour), now.Add(time.Hour))
	writeCert(t, certFile, keyFile, c1, k1)
	var logBuf syncBuffer
	h, err := newCertHolder(certFile, keyFile, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, _ := h.GetCertificate(nil)
		return c.Leaf.SerialNumber.Int64()
	}
	count := func(result string) float64 {
		var m dto.Metric
		if err := h.reloads.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}

	h.checkFiles() // nothing changed
	if serial() != 11 || count("ok")+count("failed") != 0 {
		t.Fatalf("reload without a change: serial %d, counts %v/%v", serial(), count("ok"), count("failed"))
	}

	c2, k2 := ca.issue(t, 22, now.Add(-time.Hour), now.Add(time.Hour))
	writeCert(t, certFile, keyFile, c2, k2)
	h.checkFiles()
	if serial() != 22 || count("ok") != 1 {
		t.Fatalf("after a file change: serial %d, ok %v", serial(), count("ok"))
	}

	// The certificate of a new pair lands before its key: a mismatch.
	c3, k3 := ca.issue(t, 33, now.Add(-time.Hour), now.Add(time.Hour))
	if err := os.WriteFile(certFile, c3, 0o600); err != nil {
		t.Fatal(err)
	}
	h.checkFiles()
	h.checkFiles() // the same broken state: not tried (nor logged) again
	if serial() != 22 || count("failed") != 1 || strings.Count(logBuf.String(), "not reloaded") != 1 {
		t.Fatalf("mismatched key: serial %d, failed %v, log:\n%s", serial(), count("failed"), logBuf.String())
	}
	if err := os.WriteFile(keyFile, k3, 0o600); err != nil {
		t.Fatal(err)
	}
	h.checkFiles()
	if serial() != 33 {
		t.Fatalf("once the key landed: serial %d, log:\n%s", serial(), logBuf.String())
	}

	// An expired certificate is refused.
	c4, k4 := ca.issue(t, 44, now.Add(-2*time.Hour), now.Add(-time.Hour))
	writeCert(t, certFile, keyFile, c4, k4)
	if err := h.reload("SIGHUP"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: %v", err)
	}
	if serial() != 33 {
		t.Fatalf("expired certificate taken: serial %d", serial())
	}
}

// TestCertHolderWatch: the watcher goroutine notices a change by itself
// and stops with its context.
func TestCertHolderWatch(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := ca.issue(t, 5, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c1, k1)
	h, err := newCertHolder(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.poll = 10 * time.Millisecond
	done := make(chan struct{})
	wctx, stop := context.WithCancel(t.Context())
	go func() {
		defer close(done)
		h.watch(wctx)
	}()
	c2, k2 := ca.issue(t, 6, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c2, k2)
	deadline := time.Now().Add(waitLong)
	for {
		if c, _ := h.GetCertificate(nil); c.Leaf.SerialNumber.Int64() == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not pick up the new certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
}

// TestTLSConfigChecks: the TLS keys are checked together, and a server
// whose certificate cannot be used does not start (fail closed).
func TestTLSConfigChecks(t *testing.T) {
	for _, tc := range []struct{ lines, want string }{
		{`tls_cert = "c.pem"`, "tls_cert and tls_key go together"},
		{`tls_key = "k.pem"`, "tls_cert and tls_key go together"},
		{"tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nacme_domains = [\"chat.example.com\"]", "must be empty when tls_cert is set"},
		{`acme_domains = ["*.example.com"]`, "want a DNS name"},
		{`acme_domains = ["192.0.2.1"]`, "want a DNS name"},
		{`acme_email = "me@example.com"`, "need acme_domains"},
		{"acme_domains = [\"chat.example.com\"]\nacme_directory = \"http://ca.example.com/dir\"", "want an https:// URL"},
	} {
		dir := t.TempDir()
		_, err := loadConfig(testConfig(t, dir, map[string]string{"server": tc.lines + "\n"}))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.lines, err, tc.want)
		}
	}

	dir := t.TempDir()
	ca := newTestCA(t)
	c, k := ca.issue(t, 9, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	writeCert(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), c, k)
	cfg := testConfig(t, dir, map[string]string{"server": "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"})
	var out syncBuffer
	if code := run(t.Context(), []string{"serve", "-config", cfg}, &out, &out); code == 0 || !strings.Contains(out.String(), "expired") {
		t.Fatalf("expired certificate: exit %d, output:\n%s", code, out.String())
	}
}

// TestEchoTLS: `moonchat echo -tls-cert -tls-key` serves wss:// (so the
// conformance suite can run over TLS): messages come back unchanged over
// a verified TLS connection, and a half-given pair is a usage error.
func TestEchoTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c, k := ca.issue(t, 77, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c, k)

	var out syncBuffer
	if code := run(t.Context(), []string{"echo", "-tls-cert", certFile}, &out, &out); code != 2 || !strings.Contains(out.String(), "-tls-cert and -tls-key go together") {
		t.Fatalf("-tls-cert alone: exit %d, output:\n%s", code, out.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"echo", "-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile}, &bytes.Buffer{}, &stderr)
	}()
	addrRE := regexp.MustCompile(`msg="echo server listening" addr=(\S+) url=wss://`)
	var addr string
	for deadline := time.Now().Add(waitLong); addr == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("echo server did not log a wss:// address; log:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := websocket.Dialer{HandshakeTimeout: waitLong, TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}}
	conn, _, err := d.Dial("wss://"+addr+"/", nil)
	if err != nil {
		cancel()
		t.Fatalf("dial wss: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitLong))
	for _, msg := range [][]byte{[]byte("over tls"), bytes.Repeat([]byte("x"), 100000)} {
		if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		if _, got, err := conn.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
		}
	}
	if s := conn.NetConn().(*tls.Conn).ConnectionState(); s.PeerCertificates[0].SerialNumber.Int64() != 77 {
		t.Fatalf("serial %v", s.PeerCertificates[0].SerialNumber)
	}
	conn.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("echo exit %d; log:\n%s", code, stderr.String())
		}
	case <-time.After(waitLong):
		t.Fatal("echo did not stop")
	}
}

// TestACMEDomainsAnswered: the names acme_domains gets certificates for are
// Host names the server answers to, like [server] hosts ("*" stays alone).
func TestACMEDomainsAnswered(t *testing.T) {
	got := answerHosts(&ServerConfig{Listen: ":443", Hosts: []string{"chat.lan"}, ACMEDomains: []string{"chat.example.com"}})
	if strings.Join(got, ",") != "chat.lan,chat.example.com" {
		t.Fatalf("answered: %q", got)
	}
	got = answerHosts(&ServerConfig{Listen: ":443", Hosts: []string{"*"}, ACMEDomains: []string{"chat.example.com"}})
	if strings.Join(got, ",") != "*" {
		t.Fatalf("with \"*\": %q", got)
	}
}

// TestCheckTLS: moonchat check loads the certificate as serve would: it
// names it when it is usable and fails when it is not.
func TestCheckTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c, k := ca.issue(t, 4660, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c, k)
	cfg := testConfig(t, dir, map[string]string{"server": "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"})
	var out syncBuffer
	if code := run(t.Context(), []string{"check", "-config", cfg}, &out, &out); code != 0 || !strings.Contains(out.String(), "tls: certificate "+certFile+" for localhost, serial 1234") {
		t.Fatalf("check: exit %d, output:\n%s", code, out.String())
	}
	_, k2 := ca.issue(t, 4661, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err := os.WriteFile(keyFile, k2, 0o600); err != nil {
		t.Fatal(err)
	}
	var out2 syncBuffer
	if code := run(t.Context(), []string{"check", "-config", cfg}, &out2, &out2); code == 0 || !strings.Contains(out2.String(), "private key does not match public key") {
		t.Fatalf("check with a key that does not match: exit %d, output:\n%s", code, out2.String())
	}
}

// TestTLSHandshakeErrorsQuiet: a failed TLS handshake (a client that sends
// plain bytes and one that hangs up mid-handshake) is counted in
// moonchat_tls_handshake_errors_total and not logged as a warning, so that
// strangers cannot fill the log; the server keeps serving.
func TestTLSHandshakeErrorsQuiet(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1 := ca.issue(t, 1001, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeCert(t, certFile, keyFile, c1, k1)
	cfg := testConfig(t, dir, map[string]string{"server": "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"})
	srv := startInProcess(t, cfg)
	for _, junk := range []string{"GARBAGE\r\n\r\n", "\x16\x03\x01\x00\x05hello"} {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(junk))
		_ = c.SetReadDeadline(time.Now().Add(waitLong))
		_, _ = io.Copy(io.Discard, c) // until the server hangs up
		c.Close()
	}
	hc := &http.Client{Timeout: waitLong, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "localhost"},
	}}
	var body string
	deadline := time.Now().Add(waitLong)
	for {
		resp, err := hc.Get("https://" + srv.addr + "/metrics")
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, "moonchat_tls_handshake_errors_total 2") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "moonchat_tls_handshake_errors_total 2") {
		t.Errorf("/metrics does not count both failed handshakes:\n%s", grepLines(body, "handshake"))
	}
	for _, l := range strings.Split(srv.log.String(), "\n") {
		if strings.Contains(l, "TLS handshake error") && !strings.Contains(l, "level=DEBUG") {
			t.Errorf("a failed handshake logged above debug: %s", l)
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
