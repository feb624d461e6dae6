package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// TLS for the main listener: [server] tls_cert/tls_key (PEM files) or
// [server] acme_domains (certificates from an ACME CA, Let's Encrypt by
// default). One listener serves https:// pages and APIs and wss://
// WebSockets.
//
// HTTP/1.1 only: a WebSocket upgrade hijacks the HTTP/1.1 connection
// (RFC 6455 section 4); WebSockets over HTTP/2 (RFC 8441) are not
// implemented, and a browser that negotiated h2 for the page would open
// its WebSocket on a new HTTP/1.1 connection anyway. TLS 1.2 is the
// minimum (RFC 8996 deprecates 1.0 and 1.1); cipher suites and curves are
// Go's defaults, which track current advice.
//
// Certificates are served through tls.Config.GetCertificate, which reads
// the current one at every handshake: a reload swaps a pointer, and
// connections already established keep the keys they negotiated, so
// nothing drops.

// certPollInterval is how often the certificate files are checked for a
// change (two stat calls; the files are read only when one changed).
const certPollInterval = 5 * time.Second

// certHolder holds the certificate of [server] tls_cert/tls_key and
// reloads it on SIGHUP (reload) and when the files change (watch). A
// reload that fails keeps the certificate in use and says why.
type certHolder struct {
	certFile, keyFile string
	log               *slog.Logger
	poll              time.Duration

	cur atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serialises reloads; guards seen
	seen fileStamp  // the files as last loaded or tried

	reloads *prometheus.CounterVec // result="ok"|"failed"
	expiry  prometheus.GaugeFunc   // NotAfter of the certificate in use
}

// fileStamp is what the poll compares: size and modification time of
// both files. Renewal tools replace the files (or re-point a symlink, as
// certbot does: Stat follows it), which changes both.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stampFiles(certFile, keyFile string) fileStamp {
	var st fileStamp
	if fi, err := os.Stat(certFile); err == nil {
		st.certMod, st.certSize = fi.ModTime(), fi.Size()
	}
	if fi, err := os.Stat(keyFile); err == nil {
		st.keyMod, st.keySize = fi.ModTime(), fi.Size()
	}
	return st
}

// newCertHolder loads the certificate and key; an error here stops the
// server from starting (fail closed: no TLS listener without a valid
// certificate).
func newCertHolder(certFile, keyFile string, log *slog.Logger) (*certHolder, error) {
	h := &certHolder{certFile: certFile, keyFile: keyFile, log: log, poll: certPollInterval}
	h.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_tls_certificate_reloads_total",
		Help: "Reloads of [server] tls_cert/tls_key (SIGHUP or a file change), by result; a failed one keeps the certificate in use.",
	}, []string{"result"})
	h.expiry = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moonchat_tls_certificate_expiry_seconds",
		Help: "NotAfter of the TLS certificate in use, as a Unix time.",
	}, func() float64 {
		if c := h.cur.Load(); c != nil && c.Leaf != nil {
			return float64(c.Leaf.NotAfter.Unix())
		}
		return 0
	})
	h.seen = stampFiles(certFile, keyFile)
	c, err := loadCertificate(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	h.cur.Store(c)
	log.Info("TLS certificate", certAttrs(c, "cert", certFile)...)
	return h, nil
}

// loadCertificate reads a PEM certificate chain and its private key and
// checks that they match and that the leaf is valid at now.
func loadCertificate(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("[server] tls_cert %s / tls_key %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("[server] tls_cert %s: %w", certFile, err)
		}
	}
	switch {
	case now.After(c.Leaf.NotAfter):
		return nil, fmt.Errorf("[server] tls_cert %s: the certificate expired at %s", certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Leaf.NotBefore):
		return nil, fmt.Errorf("[server] tls_cert %s: the certificate is not valid before %s (is the clock right?)", certFile, c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// certAttrs describes a certificate for the log.
func certAttrs(c *tls.Certificate, kv ...any) []any {
	names := c.Leaf.DNSNames
	if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
		names = []string{c.Leaf.Subject.CommonName}
	}
	return append(kv, "names", strings.Join(names, ","), "serial", c.Leaf.SerialNumber.Text(16),
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// GetCertificate is tls.Config.GetCertificate: the certificate in use.
func (h *certHolder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cur.Load(), nil
}

// reload re-reads the files; on failure the certificate in use stays
// (logged as an error and counted). why says what asked ("SIGHUP", "file
// change").
func (h *certHolder) reload(why string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloadLocked(why, stampFiles(h.certFile, h.keyFile))
}

func (h *certHolder) reloadLocked(why string, st fileStamp) error {
	// Remember what was tried even when it fails, so that a broken file
	// is reported once, not at every poll, and tried again when it
	// changes (a renewal that wrote the certificate but not yet the key
	// fails once, then succeeds when the key lands).
	h.seen = st
	c, err := loadCertificate(h.certFile, h.keyFile, time.Now())
	if err != nil {
		h.reloads.WithLabelValues("failed").Inc()
		old := h.cur.Load()
		h.log.Error("TLS certificate not reloaded: still serving the previous one", certAttrs(old, "why", why, "err", err)...)
		return err
	}
	h.cur.Store(c)
	h.reloads.WithLabelValues("ok").Inc()
	h.log.Info("TLS certificate reloaded", certAttrs(c, "why", why)...)
	return nil
}

// checkFiles reloads when the files' size or modification time changed
// since the last load or attempt.
func (h *certHolder) checkFiles() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := stampFiles(h.certFile, h.keyFile); st != h.seen {
		_ = h.reloadLocked("file change", st)
	}
}

// watch polls the files every h.poll until ctx ends. Polling (two stat
// calls) instead of inotify: it works the same on every platform and
// through the symlink swaps of renewal tools, and needs no dependency.
func (h *certHolder) watch(ctx context.Context) {
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.checkFiles()
		}
	}
}

func (h *certHolder) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.reloads, h.expiry}
}

// serverTLS is the TLS side of the main listener: its tls.Config and what
// must run beside it.
type serverTLS struct {
	config *tls.Config
	certs  *certHolder // nil with ACME
	acme   *autocert.Manager
}

// newServerTLS builds the listener's TLS from [server]: nil when TLS is
// off (no tls_cert and no acme_domains). dataDir is where ACME's account
// key and certificates are cached (beside the history database). acmeHTTP
// is the HTTP client that talks to the ACME CA (nil: the default, which
// trusts the system's roots; tests pass one that trusts a local CA).
func newServerTLS(sc *ServerConfig, dataDir string, log *slog.Logger, acmeHTTP *http.Client) (*serverTLS, error) {
	base := func() *tls.Config {
		return &tls.Config{
			MinVersion: tls.VersionTLS12,
			// HTTP/1.1 only (see the top of this file).
			NextProtos: []string{"http/1.1"},
		}
	}
	switch {
	case sc.TLSCert != "":
		h, err := newCertHolder(sc.TLSCert, sc.TLSKey, log)
		if err != nil {
			return nil, err
		}
		cfg := base()
		cfg.GetCertificate = h.GetCertificate
		return &serverTLS{config: cfg, certs: h}, nil
	case len(sc.ACMEDomains) > 0:
		cache := filepath.Join(dataDir, "acme")
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return nil, fmt.Errorf("[server] acme_domains: certificate cache: %w", err)
		}
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(cache),
			HostPolicy: autocert.HostWhitelist(sc.ACMEDomains...),
			Email:      sc.ACMEEmail,
		}
		directory := sc.ACMEDirectory
		if directory == "" {
			directory = autocert.DefaultACMEDirectory
		}
		m.Client = &acme.Client{DirectoryURL: directory, HTTPClient: acmeHTTP}
		cfg := base()
		cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := m.GetCertificate(hello)
			if err != nil {
				// The handshake fails (no certificate is no TLS). A
				// name not in acme_domains, or none (a client that
				// connects by IP address sends no SNI), is every
				// scanner's: debug. Anything else is an ACME failure
				// that the operator must see (autocert retries at the
				// next handshake).
				level := slog.LevelError
				if hello.ServerName == "" || !slices.Contains(sc.ACMEDomains, strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))) {
					level = slog.LevelDebug
				}
				log.Log(context.Background(), level, "TLS: no certificate for the handshake", "name", hello.ServerName, "remote", hello.Conn.RemoteAddr().String(), "err", err)
			}
			return c, err
		}
		// TLS-ALPN-01 (RFC 8737): the CA validates a domain by a TLS
		// handshake to port 443 offering "acme-tls/1", which
		// m.GetCertificate answers with the challenge certificate.
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
		log.Info("TLS certificates from ACME (TLS-ALPN-01: the CA must reach this listener on port 443)",
			"domains", strings.Join(sc.ACMEDomains, ","), "directory", directory, "cache", cache)
		return &serverTLS{config: cfg, acme: m}, nil
	}
	return nil, nil
}

// checkTLSConfig validates the TLS keys of [server] (validateConfig).
func checkTLSConfig(s *ServerConfig, fail func(key, format string, args ...any)) {
	if (s.TLSCert == "") != (s.TLSKey == "") {
		fail("[server] tls_cert", "tls_cert and tls_key go together: set both or neither")
	}
	if s.TLSCert != "" && len(s.ACMEDomains) > 0 {
		fail("[server] acme_domains", "must be empty when tls_cert is set (one source of certificates)")
	}
	for _, d := range s.ACMEDomains {
		if d == "" || strings.ContainsAny(d, "*/: ") || net.ParseIP(d) != nil || !strings.Contains(d, ".") {
			fail("[server] acme_domains", "%q: want a DNS name such as \"chat.example.com\" (no wildcard, address or port: TLS-ALPN-01 validates one name at a time)", d)
		}
	}
	if (s.ACMEEmail != "" || s.ACMEDirectory != "") && len(s.ACMEDomains) == 0 {
		fail("[server] acme_domains", "acme_email and acme_directory need acme_domains")
	}
	if s.ACMEDirectory != "" {
		if u, err := url.Parse(s.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
			fail("[server] acme_directory", "%q: want an https:// URL of an ACME directory", s.ACMEDirectory)
		}
	}
}

// dataDir is the directory of the history database ([store] path), where
// the server keeps its other state (the ACME cache); the working directory
// when history is off.
func dataDir(cfg *Config) string {
	if cfg.Store.Path == "" {
		return "."
	}
	return filepath.Dir(cfg.Store.Path)
}

// checkTLSLine is moonchat check's view of [server] TLS: the certificate
// files loaded as serve loads them (an error when they would not start
// it), or the ACME names; "" when TLS is off.
func checkTLSLine(sc *ServerConfig) (string, error) {
	switch {
	case sc.TLSCert != "":
		c, err := loadCertificate(sc.TLSCert, sc.TLSKey, time.Now())
		if err != nil {
			return "", err
		}
		a := certAttrs(c)
		return fmt.Sprintf("tls: certificate %s for %s, serial %s, expires %s", sc.TLSCert, a[1], a[3], a[5]), nil
	case len(sc.ACMEDomains) > 0:
		return "tls: certificates from ACME for " + strings.Join(sc.ACMEDomains, ", "), nil
	}
	return "", nil
}
