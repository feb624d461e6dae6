package chat

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/addrlimit"
	"github.com/moonchat/moonchat/core/ws"
)

// Flood control (docs/protocol.md, "Flood control"). Every chat message,
// token event and delete request of a connection spends one token of up
// to three token buckets:
//
//   - its own (bucket, [chat] flood_rate/flood_burst), owned by the
//     connection's OnMessage calls, which never overlap: no lock;
//   - the one its account shares with the account's other connections
//     (flood_rate_account), so that 50 tabs do not get 50 times the rate;
//   - the one its address shares with every connection from the same IPv4
//     address or IPv6 /64 (flood_rate_addr), so that 50 connections from
//     one host do not either. The address is the client's as the
//     per-address connection limits see it (Server.clientAddr: behind a
//     trusted proxy, the forwarded one), and [server] limits_exempt
//     exempts it from this bucket too.
//
// The shared buckets live in a floodTable per scope. A connection holds a
// pointer to its entries from OnOpen to OnClose (a reference count keeps
// them), so the message path costs a lock of the entry only (contended only
// by the same address's or account's connections), never a map lookup. An
// entry nobody holds stays until its bucket has refilled — else closing
// and reopening a connection would refill it at once — and is then swept
// by the next insertion that finds the table grown (amortised, no
// goroutine). Memory is thus bounded by the open connections plus the
// entries that emptied within one refill time.
//
// A message refused by any bucket spends none: the tokens the others gave
// are put back. Refusals are strikes: FloodStrikes of them within
// FloodStrikeWindow close the connection with 1008.

// MaxFloodBurst bounds a token bucket's burst (Limits.Burst, [chat]
// flood_burst and its per-address and per-account variants).
const MaxFloodBurst = 1_000_000

// closeFlooding is the close reason (and the last error's text) of a
// connection closed for flooding.
const closeFlooding = "flooding: too many messages"

// check reports whether l can work (see Limits).
func (l Limits) check() error {
	switch {
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate < 0:
		return fmt.Errorf("%w: rate %v: must be 0 (no limit) or a positive number", ErrInvalidLimits, l.Rate)
	case l.Rate > 0 && (l.Burst < 1 || l.Burst > MaxFloodBurst):
		return fmt.Errorf("%w: burst %d: must be between 1 and %d", ErrInvalidLimits, l.Burst, MaxFloodBurst)
	case l.Burst < 0 || l.Burst > MaxFloodBurst:
		return fmt.Errorf("%w: burst %d: must be between 0 and %d", ErrInvalidLimits, l.Burst, MaxFloodBurst)
	}
	return nil
}

// normal returns l as Host.Limits reports it: Burst 0 when there is no
// limit.
func (l Limits) normal() Limits {
	if l.Rate == 0 {
		l.Burst = 0
	}
	return l
}

// bucket is a token bucket: rate tokens per second, at most burst banked.
// A connection's own bucket is only touched from that connection's
// OnMessage calls, which never overlap, so it needs no lock; a shared
// one is guarded by its sharedBucket's mu.
type bucket struct {
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
	// noticed is when the flooder was last told; notices are sent at most
	// once per second so a flood does not turn into a flood of notices.
	noticed time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// refill adds the tokens earned since the last call. A shared bucket may
// be handed a time a little older than its last (two connections read the
// clock, the later one locks first): that earns nothing and keeps last.
func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		if now.Before(b.last) {
			return
		}
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
}

// take spends one token at now and reports whether there was one.
func (b *bucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// refund puts back the token take spent (the message was refused by
// another bucket).
func (b *bucket) refund() {
	if b.rate > 0 {
		b.tokens = min(b.tokens+1, b.burst)
	}
}

// full reports whether b has refilled to its burst by now: it is then as
// good as a new bucket.
func (b *bucket) full(now time.Time) bool {
	if b.rate <= 0 || b.last.IsZero() {
		return true
	}
	return b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
}

// shouldNotify reports whether a refused message should be answered with
// a notice (at most once per second).
func (b *bucket) shouldNotify(now time.Time) bool {
	if !b.noticed.IsZero() && now.Sub(b.noticed) < time.Second {
		return false
	}
	b.noticed = now
	return true
}

// sharedBucket is the bucket of one address or account.
type sharedBucket struct {
	refs int // connections holding it; guarded by the table's mu

	mu sync.Mutex
	b  bucket
}

func (sb *sharedBucket) take(now time.Time) bool {
	sb.mu.Lock()
	ok := sb.b.take(now)
	sb.mu.Unlock()
	return ok
}

func (sb *sharedBucket) refund() {
	sb.mu.Lock()
	sb.b.refund()
	sb.mu.Unlock()
}

// floodTable is the shared buckets of one scope: addresses (by
// addrlimit.Key) or accounts (by id). A nil *floodTable is a scope without
// a limit.
type floodTable[K comparable] struct {
	rate  float64
	burst int

	mu sync.Mutex // guards m, refs and sweepAt; taken before an entry's mu
	m  map[K]*sharedBucket
	// sweepAt is the size at which the next insertion sweeps: twice what
	// the last sweep left, so sweeping costs O(1) per insertion.
	sweepAt int
}

// minSweep is the smallest table that is ever swept.
const minSweep = 64

// newFloodTable returns the table of a scope limited to rate and burst, or
// nil when rate is 0 (no limit).
func newFloodTable[K comparable](rate float64, burst int) *floodTable[K] {
	if rate <= 0 {
		return nil
	}
	return &floodTable[K]{rate: rate, burst: burst, m: make(map[K]*sharedBucket), sweepAt: minSweep}
}

// acquire returns key's bucket, held until release.
func (t *floodTable[K]) acquire(key K, now time.Time) *sharedBucket {
	t.mu.Lock()
	defer t.mu.Unlock()
	sb := t.m[key]
	if sb == nil {
		if len(t.m) >= t.sweepAt {
			t.sweep(now)
		}
		sb = &sharedBucket{b: newBucket(t.rate, t.burst)}
		t.m[key] = sb
	}
	sb.refs++
	return sb
}

// release gives back a bucket acquire returned. The entry stays: it is
// swept once nobody holds it and it has refilled.
func (t *floodTable[K]) release(sb *sharedBucket) {
	t.mu.Lock()
	sb.refs--
	t.mu.Unlock()
}

// sweep forgets the buckets nobody holds that have refilled. t.mu is held.
func (t *floodTable[K]) sweep(now time.Time) {
	for k, sb := range t.m {
		if sb.refs > 0 {
			continue
		}
		sb.mu.Lock()
		full := sb.b.full(now)
		sb.mu.Unlock()
		if full {
			delete(t.m, k)
		}
	}
	t.sweepAt = max(2*len(t.m), minSweep)
}

// size returns how many buckets t keeps (tests).
func (t *floodTable[K]) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// floodAddrKey is the per-address bucket of a connection from client
// (Server.clientAddr): addrlimit.Key, the IPv4 address or the IPv6 /64,
// as for every per-address limit. ok is false for an address in
// [server] limits_exempt (AddrLimits.Exempt): it has no per-address
// bucket. An unknown client (a trusted proxy named none) is never exempt:
// all such clients share one bucket.
func (s *Server) floodAddrKey(client netip.AddrPort) (key netip.Prefix, ok bool) {
	if s.limits.Exempt(client.Addr()) {
		return netip.Prefix{}, false
	}
	return addrlimit.Key(client.Addr()), true
}

// floodState is a connection's flood control, owned by its OnMessage calls
// (serialised by the engine) but for limits, which Host.SetLimits stores
// from any goroutine.
type floodState struct {
	bucket bucket
	// addrKey is the per-address bucket's key (floodAddrKey); noAddr:
	// the address is exempt.
	addrKey netip.Prefix
	noAddr  bool
	// addr and acct are the shared buckets the connection holds from
	// OnOpen to OnClose; nil for a scope without a limit (and acct for a
	// guest, addr for an exempt address).
	addr, acct *sharedBucket
	// limits are the limits a script set (Host.SetLimits), nil until
	// then; applied is the value bucket was last configured from.
	limits  atomic.Pointer[Limits]
	applied *Limits
	// strikes counts the refusals since strikeStart (FloodStrikes).
	strikes     int
	strikeStart time.Time
}

// floodLimit names the bucket that refused a message.
type floodLimit uint8

const (
	floodOK floodLimit = iota
	floodConn
	floodAccount
	floodAddr
)

// floodWhy is what a refused client is told, by limit.
var floodWhy = [...]string{
	floodConn:    "you are sending too fast",
	floodAccount: "your account is sending too fast (all its connections together)",
	floodAddr:    "your address is sending too fast (all its connections together)",
}

// floodNow is the flood limits' time: now (time.Now, which the message
// path reads anyway) with the real clock, Config.Clock's time with a fake
// one.
func (s *Server) floodNow(now time.Time) time.Time {
	if s.fakeClock {
		return s.cfg.Clock.Now()
	}
	return now
}

// floodOpen gives m its shared buckets (OnOpen, once m is admitted).
func (s *Server) floodOpen(m *member) {
	now := s.floodNow(time.Now())
	if s.floodAddrs != nil && !m.flood.noAddr {
		m.flood.addr = s.floodAddrs.acquire(m.flood.addrKey, now)
	}
	if s.floodAccounts != nil && m.account != "" {
		m.flood.acct = s.floodAccounts.acquire(m.account, now)
	}
}

// floodClose gives back m's shared buckets (OnClose).
func (s *Server) floodClose(m *member) {
	if m.flood.addr != nil {
		s.floodAddrs.release(m.flood.addr)
	}
	if m.flood.acct != nil {
		s.floodAccounts.release(m.flood.acct)
	}
}

// allowFlood reports whether m may send a message (a token event when
// token; a delete request counts as a message) at now, spending its
// tokens. A refusal is counted by limit, is a
// strike (which may close the connection), and is answered at most once a
// second: an error "flood" (or "token_refused" for a token event) naming
// the limit. Called from m's OnMessage only; the caller counts the drop.
func (s *Server) allowFlood(m *member, now time.Time, token bool) bool {
	lim := s.spend(m, now)
	if lim == floodOK {
		return true
	}
	if !s.floodRefused(m, now, lim) && m.flood.bucket.shouldNotify(now) {
		if token {
			m.sendError(codeTokenRefused, "token refused: "+floodWhy[lim])
		} else {
			m.sendError(codeFlood, floodWhy[lim]+"; messages were dropped")
		}
	}
	return false
}

// spend takes one token for a message of m from each bucket that applies
// and reports which refused it (then no bucket keeps a token). Called
// from m's OnMessage only.
func (s *Server) spend(m *member, now time.Time) floodLimit {
	f := &m.flood
	if l := f.limits.Load(); l != f.applied {
		f.apply(l, now)
	}
	if !f.bucket.take(now) {
		return floodConn
	}
	if f.applied != nil {
		return floodOK // a script's limits replace the shared buckets
	}
	if f.acct != nil && !f.acct.take(now) {
		f.bucket.refund()
		return floodAccount
	}
	if f.addr != nil && !f.addr.take(now) {
		if f.acct != nil {
			f.acct.refund()
		}
		f.bucket.refund()
		return floodAddr
	}
	return floodOK
}

// apply reconfigures the bucket at now with the limits a script set
// (OnMessage only). The tokens banked stay, within the new burst; a
// bucket that had no limit starts full.
func (f *floodState) apply(l *Limits, now time.Time) {
	b := &f.bucket
	if b.rate > 0 {
		b.refill(now) // what the old rate earned until now
		b.tokens = min(b.tokens, float64(l.Burst))
	} else {
		b.tokens, b.last = float64(l.Burst), now
	}
	b.rate, b.burst = l.Rate, float64(l.Burst)
	f.applied = l
}

// floodRefused accounts for a message of m that lim refused at now: it is
// counted, and a strike; it reports whether that strike closed the
// connection (with 1008, after an error telling why). Called from m's
// OnMessage only.
func (s *Server) floodRefused(m *member, now time.Time, lim floodLimit) bool {
	s.metrics.floodRefused[lim].Add(1)
	n := s.cfg.FloodStrikes
	if n == 0 {
		return false
	}
	f := &m.flood
	if f.strikes == 0 || now.Sub(f.strikeStart) >= s.cfg.FloodStrikeWindow {
		f.strikes, f.strikeStart = 0, now
	}
	f.strikes++
	if f.strikes < n {
		return false
	}
	s.metrics.floodClosed.Add(1)
	s.log.Info("chat: connection closed for flooding", "room", m.roomName, "session", m.id,
		"user", m.currentName(), "account", m.account, "remote", m.addr,
		"strikes", f.strikes, "window", s.cfg.FloodStrikeWindow, "limit", floodLimitNames[lim])
	m.sendError(codeFlood, closeFlooding)
	_ = m.conn.Close(ws.StatusPolicyViolation, closeFlooding)
	return true
}

// floodLimitNames are the limit label values of
// moonchat_flood_refused_total, by floodLimit.
var floodLimitNames = [...]string{floodConn: "connection", floodAccount: "account", floodAddr: "address"}

// Limits implements Host.
func (s *Server) Limits(sessionID uint64) (Limits, error) {
	m := s.session(sessionID)
	if m == nil || m.gone.Load() {
		return Limits{}, s.noSession(sessionID)
	}
	if l := m.flood.limits.Load(); l != nil {
		return *l, nil
	}
	return Limits{Rate: s.cfg.FloodRate, Burst: s.cfg.FloodBurst}.normal(), nil
}

// SetLimits implements Host: the member's next message is held to l.
func (s *Server) SetLimits(sessionID uint64, l Limits) error {
	if err := l.check(); err != nil {
		return err
	}
	l = l.normal()
	m := s.session(sessionID)
	if m == nil || m.gone.Load() {
		return s.noSession(sessionID)
	}
	m.flood.limits.Store(&l)
	return nil
}
