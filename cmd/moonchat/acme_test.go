package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// TestACMECertFromPebble: [server] acme_domains obtains a certificate from a local
// ACME CA, Let's Encrypt's test server Pebble (a tool of this module:
// go.mod's tool directive, run as `go tool pebble`), by TLS-ALPN-01 on the
// server's own listener, and serves it. Pebble's validation of the
// challenge connects to the name on its tlsPort, set to our port; the name
// resolves to 127.0.0.1 through a small DNS server of the test (Pebble's
// -dnsserver), since autocert refuses names without a dot and no such name
// resolves to loopback here.
func TestACMECertFromPebble(t *testing.T) {
	const domain = "chat.moonchat.test"
	dir := t.TempDir()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port

	dnsAddr := startTestDNS(t, net.IPv4(127, 0, 0, 1))
	pebble := startPebble(t, dir, port, dnsAddr)

	sc := &ServerConfig{ACMEDomains: []string{domain}, ACMEDirectory: pebble.directory}
	var logBuf syncBuffer
	st, err := newServerTLS(sc, dir, slog.New(slog.NewTextHandler(&logBuf, nil)), pebble.client)
	if err != nil {
		t.Fatal(err)
	}
	if st.acme == nil || !strings.Contains(strings.Join(st.config.NextProtos, ","), "acme-tls/1") {
		t.Fatalf("ACME TLS config: %+v", st.config.NextProtos)
	}
	hs := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "over acme\n") }),
		ReadHeaderTimeout: waitLong,
		ErrorLog:          slog.NewLogLogger(slog.NewTextHandler(&logBuf, nil), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(tls.NewListener(ln, st.config)) }()
	t.Cleanup(func() {
		_ = hs.Close()
		<-served
		if t.Failed() {
			t.Logf("server log:\n%s", logBuf.String())
		}
	})

	// The first handshake for the name makes autocert order the
	// certificate, which Pebble issues once it has validated the
	// challenge on this same listener.
	roots := pebble.roots(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: domain},
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/", port), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET over a certificate from Pebble: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	leaf := resp.TLS.PeerCertificates[0]
	if string(body) != "over acme\n" || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != domain {
		t.Fatalf("got %q with a certificate for %v", body, leaf.DNSNames)
	}
	if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Fatalf("certificate issued by %q, want Pebble", leaf.Issuer.CommonName)
	}
	// Cached beside the database: a restart does not order again.
	if entries, err := os.ReadDir(filepath.Join(dir, "acme")); err != nil || len(entries) < 2 {
		t.Fatalf("acme cache: %v, %v", entries, err)
	}
}

// pebbleCA is a running Pebble.
type pebbleCA struct {
	directory string       // the ACME directory URL
	mgmt      string       // management interface (roots)
	client    *http.Client // trusts Pebble's own HTTPS certificate
}

// roots returns the root Pebble issues under (made at its start).
func (p *pebbleCA) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pemBytes, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("Pebble's root: %q", pemBytes)
	}
	return pool
}

// startPebble runs `go tool pebble` on loopback with its test certificate,
// validating TLS-ALPN-01 on tlsPort and resolving names through dnsAddr.
func startPebble(t *testing.T, dir string, tlsPort int, dnsAddr string) *pebbleCA {
	t.Helper()
	out, err := exec.Command("go", "tool", "-n", "pebble").Output()
	if err != nil {
		t.Fatalf("go tool -n pebble: %v", err)
	}
	bin := strings.TrimSpace(string(out))
	modDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		t.Fatalf("locate pebble's module: %v", err)
	}
	certs := filepath.Join(strings.TrimSpace(string(modDir)), "test", "certs")
	listen, mgmt := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":                     filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                       5002, // HTTP-01 is not offered by autocert here
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	// No random sleeps before validation, no nonces refused on purpose.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("pebble log:\n%s", log.String())
		}
	})

	pemBytes, err := os.ReadFile(filepath.Join(certs, "pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	p := &pebbleCA{
		directory: "https://" + listen + "/dir",
		mgmt:      "https://" + mgmt,
		// Pebble's certificate names localhost and 127.0.0.1.
		client: &http.Client{Timeout: waitLong, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	deadline := time.Now().Add(waitLong)
	for {
		resp, err := p.client.Get(p.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("pebble exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not up: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startTestDNS serves DNS over TCP (what Pebble's -dnsserver speaks) on
// loopback: every A question is answered with ip, every other question
// with no records.
func startTestDNS(t *testing.T, ip net.IP) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	var a [4]byte
	copy(a[:], ip.To4())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(waitLong))
				br := bufio.NewReader(c)
				for {
					var n uint16
					if binary.Read(br, binary.BigEndian, &n) != nil {
						return
					}
					q := make([]byte, n)
					if _, err := io.ReadFull(br, q); err != nil {
						return
					}
					ans, err := dnsAnswer(q, a)
					if err != nil {
						return
					}
					if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(ans)))); err != nil {
						return
					}
					if _, err := c.Write(ans); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// dnsAnswer answers the query q: A records get a, anything else nothing.
func dnsAnswer(q []byte, a [4]byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	question, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(question); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if question.Type == dnsmessage.TypeA {
		rh := dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}
		if err := b.AResource(rh, dnsmessage.AResource{A: a}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
