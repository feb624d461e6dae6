package loadgen

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config describes one load run. Validate fills in defaults.
type Config struct {
	// URL of the room, ws://HOST/chat/ROOM, or wss:// over TLS.
	URL string
	// URLs, when set, are the room's URLs on several servers (the nodes
	// of a cluster): client i connects to URLs[i%len(URLs)], and the
	// summary has deliveries and latency per URL. Validate sets URL to
	// URLs[0]; without URLs, it sets URLs to URL alone.
	URLs []string
	// RunID tags every payload of the run, so that its messages are told
	// from older ones (replayed history, other tools in the room). Empty:
	// a random one. The worker processes of one scale run share one, so
	// that each counts the broadcasts another one sent. 6 to 16 ASCII
	// letters and digits.
	RunID string
	// TLSRoots are the certificate authorities a wss:// server's
	// certificate is verified against (nil: the system's). TLS clients
	// are read on goroutines (GoroutineReaders): the epoll readers take
	// the raw socket, which TLS does not allow.
	TLSRoots *x509.CertPool
	// Clients is the number of connections (members of the room).
	Clients int
	// Senders is how many of the clients send (the first ones).
	Senders int
	// Rate is messages per second per sender; 0 sends as fast as the
	// window allows.
	Rate float64
	// Window bounds each sender's messages in flight: sent, not yet
	// received by every member.
	Window int
	// Size is the message text size in bytes.
	Size int
	// Duration is the measured time; Warmup runs the load before it
	// without measuring. In idle mode, Duration is how long the clients
	// stay idle before the timed broadcast.
	Duration, Warmup time.Duration
	// Format is "plain" or "json" (subprotocol moonchat.v1).
	Format string
	// PID, when not 0, is the server process whose CPU and memory are
	// sampled from /proc.
	PID int
	// PIDs are more server processes (the nodes of a cluster, its NATS
	// server) sampled like PID over the measured time (load mode), into
	// Summary.Processes in the same order.
	PIDs []int
	// SourceIPs are the local addresses the clients are bound to, round
	// robin (empty: the kernel picks).
	SourceIPs []net.IP
	// Idle selects idle mode: connect, stay idle, then time one broadcast.
	Idle bool
	// JoinProbes is the number of extra joins timed at the end (from dial
	// to the moonchat.v1 history event carrying the replay; moonchat
	// servers only); 0 = none.
	JoinProbes int
	// AllowRemote permits non-loopback targets and source addresses.
	AllowRemote bool
	// ConnectConcurrency bounds dials in progress (default 64).
	ConnectConcurrency int
	// ConnectTimeout bounds one dial and handshake (default 10s).
	ConnectTimeout time.Duration
	// DrainTimeout bounds the wait for messages in flight after the
	// measured time (default 5s).
	DrainTimeout time.Duration
	// ReadBufferSize of each client (default 4096; idle mode 512). With
	// the epoll readers it only serves the handshake.
	ReadBufferSize int
	// GoroutineReaders reads each client on a goroutine of its own (the
	// portable path, and the only one outside Linux) instead of a few
	// epoll loops shared by all clients, which cost the tool much less
	// CPU per delivery.
	GoroutineReaders bool
}

// Errors from Validate.
var (
	ErrRemoteTarget = errors.New("target is not a loopback address (pass -allow-remote to load-test a remote server you own)")
	ErrBadConfig    = errors.New("bad configuration")
)

// Validate checks c and applies defaults.
func (c *Config) Validate() error {
	if len(c.URLs) == 0 {
		c.URLs = []string{c.URL}
	}
	c.URL = c.URLs[0]
	for _, raw := range c.URLs {
		if err := c.checkURL(raw); err != nil {
			return err
		}
	}
	if err := checkRunID(c.RunID); err != nil {
		return err
	}
	if !c.AllowRemote {
		for _, ip := range c.SourceIPs {
			if !ip.IsLoopback() {
				return fmt.Errorf("%w: source address %s", ErrRemoteTarget, ip)
			}
		}
	}
	switch {
	case c.Clients < 1:
		return fmt.Errorf("%w: -clients must be at least 1", ErrBadConfig)
	case c.Senders < 0 || c.Senders > c.Clients:
		return fmt.Errorf("%w: -senders must be between 0 and -clients", ErrBadConfig)
	case !c.Idle && c.Senders < 1:
		return fmt.Errorf("%w: -senders must be at least 1 (or use -idle)", ErrBadConfig)
	case c.Rate < 0:
		return fmt.Errorf("%w: -rate must not be negative", ErrBadConfig)
	case c.Window < 0 || c.Size < 0 || c.Duration < 0 || c.Warmup < 0 || c.JoinProbes < 0:
		return fmt.Errorf("%w: negative -window, -size, -duration, -warmup or -join-probe", ErrBadConfig)
	case c.Duration == 0:
		return fmt.Errorf("%w: -duration must be positive", ErrBadConfig)
	}
	if c.Format == "" {
		c.Format = "plain"
	}
	if c.Format != "plain" && c.Format != "json" {
		return fmt.Errorf("%w: -format %q: want plain or json", ErrBadConfig, c.Format)
	}
	if c.Window == 0 {
		c.Window = 16
	}
	if c.Size == 0 {
		c.Size = 64
	}
	if c.ConnectConcurrency <= 0 {
		c.ConnectConcurrency = 64
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 4096
		if c.Idle {
			c.ReadBufferSize = 512
		}
	}
	return nil
}

// checkURL checks one room URL (and that it is on loopback unless
// AllowRemote); a wss:// one selects the goroutine readers.
func (c *Config) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrBadConfig, raw, err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("%w: url %q: want ws://HOST[:PORT]/PATH or wss://", ErrBadConfig, raw)
	}
	if u.Scheme == "wss" {
		c.GoroutineReaders = true
	}
	if !c.AllowRemote {
		return checkLoopback(u.Hostname())
	}
	return nil
}

// checkRunID accepts "" (a random id) or 6 to 16 ASCII letters and
// digits: the id goes into every payload and nickname, so it must need
// no escaping and leave names short.
func checkRunID(id string) error {
	if id == "" {
		return nil
	}
	if len(id) < 6 || len(id) > 16 {
		return fmt.Errorf("%w: run id %q: want 6 to 16 letters and digits", ErrBadConfig, id)
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9') {
			return fmt.Errorf("%w: run id %q: want 6 to 16 letters and digits", ErrBadConfig, id)
		}
	}
	return nil
}

// checkLoopback refuses a host that is not (or does not resolve only to)
// loopback addresses.
func checkLoopback(host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrRemoteTarget, host)
		}
		return nil
	}
	addrs, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %s: %v", ErrRemoteTarget, host, err)
	}
	for _, ip := range addrs {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s resolves to %s", ErrRemoteTarget, host, ip)
		}
	}
	return nil
}

// ParseSourceIPs parses "127.0.0.1-127.0.0.20" (an IPv4 range) or a comma
// separated list of addresses; "" gives none.
func ParseSourceIPs(s string) ([]net.IP, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo)).To4()
		if !isRange {
			ip := net.ParseIP(part)
			if ip == nil {
				return nil, fmt.Errorf("%w: source address %q", ErrBadConfig, part)
			}
			out = append(out, ip)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi)).To4()
		if a == nil || b == nil {
			return nil, fmt.Errorf("%w: source range %q: want IPv4-IPv4", ErrBadConfig, part)
		}
		from, to := ipv4Uint(a), ipv4Uint(b)
		if to < from || to-from >= 1<<16 {
			return nil, fmt.Errorf("%w: source range %q: empty or over 65536 addresses", ErrBadConfig, part)
		}
		for v := from; v <= to; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)))
		}
	}
	return out, nil
}

func ipv4Uint(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
