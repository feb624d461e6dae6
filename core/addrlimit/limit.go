package addrlimit

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the per-address limits. Zero values mean "no limit" for
// MaxConns and Rate, "none" for Exempt.
type Config struct {
	// MaxConns bounds the connections one address (Key) holds at once;
	// 0 = no limit.
	MaxConns int
	// Rate is the handshakes per second one address may start on
	// average (token bucket); 0 = no limit.
	Rate float64
	// Burst is the token bucket's size: handshakes an address may start
	// at once. At least 1 when Rate is set.
	Burst int
	// Exempt lists the networks no per-address limit applies to (by the
	// full address, not its Key: exempting ::1 does not exempt its /64).
	// An unknown client address is never exempt.
	Exempt []netip.Prefix
	// MaxAddrs bounds the addresses tracked at once (0 = DefaultMaxAddrs).
	// When it is reached and none can be forgotten, a new address is
	// refused (KindTable) rather than let through unlimited: fail closed.
	MaxAddrs int
}

// DefaultMaxAddrs is Config.MaxAddrs when 0: about 200 bytes each, so at
// most some 25 MB however many addresses an attacker has.
const DefaultMaxAddrs = 1 << 17

// sweepEvery is how often a full table is swept at most: a sweep is a
// walk over every tracked address, so it must not run on every handshake
// of an attacker that keeps the table full.
const sweepEvery = time.Second

// Kind says which limit refused a connection.
type Kind int

// The limits.
const (
	// KindConns: the address holds Config.MaxConns connections already.
	KindConns Kind = iota + 1
	// KindRate: the address started its handshakes faster than
	// Config.Rate allows.
	KindRate
	// KindTable: Config.MaxAddrs other addresses are tracked.
	KindTable
)

// Refusal says why Admit turned a connection away, in a one-line reason
// for the client, and when to try again.
type Refusal struct {
	Kind       Kind
	Reason     string
	RetryAfter time.Duration
}

// Error returns the reason.
func (r *Refusal) Error() string { return r.Reason }

// RetryAfterSeconds is RetryAfter as the value of an HTTP Retry-After
// header (RFC 9110 section 10.2.3: whole seconds, at least 1).
func (r *Refusal) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(r.RetryAfter.Seconds()))))
}

// connsRetry is the Retry-After of a refusal for too many connections: when
// one of them closes cannot be known, and a client retrying sooner is
// refused again at no cost.
const connsRetry = 10 * time.Second

// Limiter counts connections and handshakes per address. Safe for
// concurrent use.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	addrs     map[netip.Prefix]*entry
	lastSweep time.Time
}

// entry is one address's state.
type entry struct {
	conns int
	lim   *rate.Limiter // nil when Config.Rate is 0
}

// New returns a Limiter, or an error naming the setting that cannot work.
func New(cfg Config) (*Limiter, error) {
	switch {
	case cfg.MaxConns < 0:
		return nil, fmt.Errorf("connections per address %d: must be 0 (no limit) or more", cfg.MaxConns)
	case math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) || cfg.Rate < 0:
		return nil, fmt.Errorf("handshake rate %v: must be 0 (no limit) or a positive number", cfg.Rate)
	case cfg.Rate > 0 && cfg.Burst < 1:
		return nil, fmt.Errorf("handshake burst %d: must be at least 1 when the handshake rate is set", cfg.Burst)
	case cfg.MaxAddrs < 0:
		return nil, fmt.Errorf("tracked addresses %d: must not be negative", cfg.MaxAddrs)
	}
	if cfg.MaxAddrs == 0 {
		cfg.MaxAddrs = DefaultMaxAddrs
	}
	return &Limiter{cfg: cfg, addrs: make(map[netip.Prefix]*entry)}, nil
}

// Exempt reports whether ip is in Config.Exempt.
func (l *Limiter) Exempt(ip netip.Addr) bool {
	return ip.IsValid() && contains(l.cfg.Exempt, ip)
}

// Lease is one connection counted against its address; Release gives it
// back. The zero Lease holds nothing (an exempt address, or no limit).
type Lease struct {
	l   *Limiter
	key netip.Prefix
}

// Admit counts a new connection from ip (netip.Addr{} when unknown, see
// ClientAddr) at now: one handshake against the address's rate and one
// connection against its count. On success the Lease must be released
// exactly once, when the connection has closed (or failed to open). On
// refusal nothing is counted.
func (l *Limiter) Admit(ip netip.Addr, now time.Time) (Lease, *Refusal) {
	if l.Exempt(ip) || (l.cfg.MaxConns == 0 && l.cfg.Rate == 0) {
		return Lease{}, nil
	}
	key := Key(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.addrs[key]
	if e == nil {
		if len(l.addrs) >= l.cfg.MaxAddrs && !l.sweepLocked(now) {
			return Lease{}, &Refusal{Kind: KindTable, Reason: "too many client addresses at once; try again later", RetryAfter: l.refillTime()}
		}
		e = &entry{}
		if l.cfg.Rate > 0 {
			e.lim = rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)
		}
		l.addrs[key] = e
	}
	if l.cfg.MaxConns > 0 && e.conns >= l.cfg.MaxConns {
		return Lease{}, &Refusal{Kind: KindConns, Reason: "too many connections from your address (at most " + strconv.Itoa(l.cfg.MaxConns) + ")", RetryAfter: connsRetry}
	}
	if e.lim != nil && !e.lim.AllowN(now, 1) {
		// The wait until one token is back (TokensAt is below 1 here).
		wait := time.Duration((1 - e.lim.TokensAt(now)) / l.cfg.Rate * float64(time.Second))
		r := &Refusal{Kind: KindRate, RetryAfter: wait}
		r.Reason = "too many connection attempts from your address; retry in " + r.RetryAfterSeconds() + "s"
		return Lease{}, r
	}
	e.conns++
	return Lease{l: l, key: key}, nil
}

// refillTime is how long an address's bucket takes to fill up again: after
// it, every address without connections can be forgotten.
func (l *Limiter) refillTime() time.Duration {
	if l.cfg.Rate == 0 {
		return sweepEvery
	}
	return max(sweepEvery, time.Duration(float64(l.cfg.Burst)/l.cfg.Rate*float64(time.Second)))
}

// sweepLocked forgets the addresses that hold no connection and whose
// bucket is full again (they are as good as new), at most once per
// sweepEvery, and reports whether there is room for one more.
func (l *Limiter) sweepLocked(now time.Time) bool {
	if !l.lastSweep.IsZero() && now.Sub(l.lastSweep) < sweepEvery {
		return false
	}
	l.lastSweep = now
	for k, e := range l.addrs {
		if e.conns == 0 && (e.lim == nil || e.lim.TokensAt(now) >= float64(l.cfg.Burst)) {
			delete(l.addrs, k)
		}
	}
	return len(l.addrs) < l.cfg.MaxAddrs
}

// Release gives the lease's connection back. Releasing the zero Lease does
// nothing; releasing a lease twice is a bug of the caller (it would free a
// slot another connection holds).
func (le Lease) Release() {
	l := le.l
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.addrs[le.key]
	if e == nil || e.conns == 0 {
		return
	}
	e.conns--
	if e.conns == 0 && e.lim == nil {
		delete(l.addrs, le.key) // nothing left to remember
	}
}

// Tracked returns the number of addresses tracked now (a gauge for
// /metrics).
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}

// Conns returns the connections counted for ip's address now (0 when
// exempt or untracked).
func (l *Limiter) Conns(ip netip.Addr) int {
	if l.Exempt(ip) {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.addrs[Key(ip)]; e != nil {
		return e.conns
	}
	return 0
}
