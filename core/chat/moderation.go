package chat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moonchat/moonchat/core/ws"
)

// Moderation (issue 14): bans, mutes, room settings (topic, slow mode) and
// the audit log, enforced on every path (docs/protocol.md, "Moderation").
//
//   - A ban is refused at the handshake (403 and the reason, before the
//     upgrade: nothing of the room is sent), at the join (close 1008), and
//     kicks the members it matches when it is made (close 1008).
//   - A mute refuses the member's chat messages (error "muted") and
//     renames (ErrMuted).
//   - Slow mode refuses a member's message within Slow of its last one
//     (error "slow_mode"); moderators (the room rules' moderate, or the
//     role "admin") are exempt.
//   - The admin API's posts bypass slow mode (it acts as the server), but
//     not a ban or mute on the name they are posted "as" (403,
//     adminAsRefusal).
//
// Everything fails closed: a restriction or setting the ModerationStore
// could not store is not in force and the caller gets the error; a store
// that cannot be read fails New. A write to the audit log that fails is
// logged and counted (moonchat_audit_write_errors_total) but does not undo
// the action, which is stored already.
//
// The hot paths (handshake, join, post, rename) read an immutable index
// behind an atomic pointer (modIndex): with no restriction and no slow
// mode anywhere a check is one atomic load and two compares. Changes are
// rare: they are serialised by moderation.mu, write through to the store,
// then swap in a rebuilt index.
//
// Expiry: restrictions carry absolute times (stored: they hold after a
// restart). Every check compares Expires with Config.Clock's time, so an
// expired restriction never applies even before it is swept; one timer
// (Config.Clock) per server, armed for the earliest expiry, sweeps them
// out of the index and the store and audits each expiry once
// (sweepRestrictions).

// RoleAdmin is the role that moderates every room whatever the room rules
// say (as the room rules' moderate list does for its room).
const RoleAdmin = "admin"

// ErrMuted is returned (wrapped with the reason) by Host.Rename for a
// member who is muted in its room.
var ErrMuted = errors.New("you are muted")

// ErrBanned is returned (wrapped) by Host.Rename for a guest name banned
// in the room.
var ErrBanned = errors.New("that name is banned here")

// ErrInvalidRestriction is returned (wrapped with the reason) by
// Host.Restrict, Host.Lift and Host.SetRoomSettings for arguments that
// cannot work.
var ErrInvalidRestriction = errors.New("invalid moderation request")

// memoryAuditMax bounds the audit log kept in memory when the History is
// no ModerationStore: the newest entries are kept.
const memoryAuditMax = 10000

// maxTopicBytes bounds a room topic.
const maxTopicBytes = 512

// maxSlow bounds slow mode.
const maxSlow = 24 * time.Hour

// Audit actions written by the chat server itself. An expiry is written
// as the lift it amounts to ("unban", "unmute"), by auditByServer, with
// the reason auditExpired (expiryAudit).
const (
	auditKick   = "kick"
	auditDelete = "delete"
	auditTopic  = "topic"
	auditSlow   = "slow"
)

// auditByAdmin and auditByScript are the "by" of admin API actions and of
// Host.Kick and Host.Redact, which do not say who acted (KickBy and
// RedactBy do).
const (
	auditByAdmin  = "admin"
	auditByScript = "script"
	// auditByServer is the "by" of what the server does by itself: a
	// ban or mute that expired.
	auditByServer = "server"
)

// auditExpired begins the reason of an expiry's audit entry.
const auditExpired = "expired"

// expiryAudit is the audit entry of r, which expired and was removed at
// now: "unban" or "unmute" by "server", the reason saying when it
// expired (now may be much later: a restart after a downtime).
func expiryAudit(r *Restriction, now time.Time) AuditEntry {
	return AuditEntry{Time: now.UTC(), Room: r.Room, By: auditByServer, Action: "un" + string(r.Kind), Target: targetString(r.Target),
		Reason: auditExpired + " at " + r.Expires.UTC().Format("2006-01-02 15:04:05 UTC")}
}

// modKey identifies a restriction: one per kind, room and target.
type modKey struct {
	kind RestrictionKind
	room string
	t    Target
}

// moderation is the server's moderation state.
//
// Invariants:
//   - mu serialises every change: the store write, then all, settings and
//     the index; the hot paths never take it (they load idx);
//   - all and settings hold exactly what the store holds (loaded in New,
//     written through), expired restrictions included until swept;
//   - idx is rebuilt from all and settings after every change and is
//     never changed in place;
//   - timer is armed for the earliest Expires in all while not closed.
type moderation struct {
	mu       sync.Mutex
	store    ModerationStore // nil: in memory only
	all      map[modKey]Restriction
	settings map[string]RoomSettings
	audit    []AuditEntry // the audit log without a store, oldest first
	timer    Timer
	closed   bool

	idx atomic.Pointer[modIndex]
}

// modIndex is the read side of moderation: immutable once stored.
type modIndex struct {
	n        int                           // restrictions (expired ones until swept)
	accounts map[string][]*Restriction     // Target.Account →
	names    map[string][]*Restriction     // nameKeys(Target.Name) →
	addrOne  map[netip.Addr][]*Restriction // Target.Addr of one address
	addrs    []addrRestriction             // Target.Addr of a wider prefix
	settings map[string]RoomSettings       // room → settings (non-zero only)
	slow     int                           // rooms in slow mode
	kinds    map[RestrictionKind]int       // for the gauge
	list     []*Restriction                // every restriction, oldest first
}

// addrRestriction is a restriction on an address prefix.
type addrRestriction struct {
	p netip.Prefix
	r *Restriction
}

// subject is whom a check is about: an account (or "" for a guest), the
// guest's name (ignored for an account: a name restriction never matches
// an account) and the client address (invalid: unknown).
type subject struct {
	account string
	name    string
	keys    []string // nameKeys(name) when known (nil: computed by find)
	addr    netip.Addr
}

// nameKeyCache is a member's name with its nameKeys: a guest's messages
// are checked against name restrictions without computing the keys
// (microseconds: a confusables skeleton and PRECIS) every time.
type nameKeyCache struct {
	name string
	keys []string
}

// nameKeysOf returns nameKeys(name), from m's cache when name is the one
// it last computed.
func (m *member) nameKeysOf(name string) []string {
	if c := m.nkeys.Load(); c != nil && c.name == name {
		return c.keys
	}
	k := nameKeys(name)
	m.nkeys.Store(&nameKeyCache{name, k})
	return k
}

// modMetrics are the moderation series (registered by initModeration).
type modMetrics struct {
	refusedBan, refusedMute, refusedSlow counter
	refusedDelete                        counter // DeleteMessage refused a member (delete.go)
	auditErrors                          counter
	storeErrors                          counter
}

// initModeration loads restrictions and room settings from ms, the
// History's ModerationStore or the cluster's SharedState (stateStores;
// nil: kept in memory; a read error fails New), registers the series and
// arms the expiry timer.
func (s *Server) initModeration(ms ModerationStore) error {
	md := &s.mod
	md.all = make(map[modKey]Restriction)
	md.settings = make(map[string]RoomSettings)
	if ms != nil {
		md.store = ms
		rs, err := ms.Restrictions()
		if err != nil {
			return fmt.Errorf("chat: loading bans and mutes: %w", err)
		}
		for _, r := range rs {
			md.all[modKey{r.Kind, r.Room, r.Target}] = r
		}
		settings, err := ms.RoomSettings()
		if err != nil {
			return fmt.Errorf("chat: loading room settings: %w", err)
		}
		for room, st := range settings {
			if st != (RoomSettings{}) {
				md.settings[room] = st
			}
		}
	}
	md.rebuild()
	reg := s.metrics.reg
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moonchat_moderation_refused_total",
		Help: "Actions refused by moderation, by reason (ban: handshakes, joins and admin posts as a banned name; mute: messages, renames and admin posts as a muted name; slow: messages within slow mode; delete: a member's deletion of a message not theirs or too old).",
	}, []string{"reason"})
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "moonchat_restrictions",
		Help: "Bans and mutes in force, by kind.",
	}, []string{"kind"})
	auditErrs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moonchat_audit_write_errors_total",
		Help: "Moderation actions whose audit log entry could not be written (the action stands).",
	})
	storeErrs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "moonchat_moderation_store_errors_total",
		Help: "Bans, mutes, lifts and room settings not made because the store could not write them.",
	})
	for _, c := range []prometheus.Collector{refused, gaugeCollector{gauge, s}, auditErrs, storeErrs} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	mm := &s.metrics.mod
	mm.refusedBan = counter{refused.WithLabelValues("ban")}
	mm.refusedMute = counter{refused.WithLabelValues("mute")}
	mm.refusedSlow = counter{refused.WithLabelValues("slow")}
	mm.refusedDelete = counter{refused.WithLabelValues("delete")}
	mm.auditErrors, mm.storeErrors = counter{auditErrs}, counter{storeErrs}
	md.mu.Lock()
	s.armModTimerLocked()
	md.mu.Unlock()
	return nil
}

// gaugeCollector fills moonchat_restrictions at scrape time from the index
// (restrictions in force now).
type gaugeCollector struct {
	g *prometheus.GaugeVec
	s *Server
}

// Describe implements prometheus.Collector.
func (c gaugeCollector) Describe(ch chan<- *prometheus.Desc) { c.g.Describe(ch) }

// Collect implements prometheus.Collector.
func (c gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	ix := c.s.mod.idx.Load()
	now := c.s.cfg.Clock.Now()
	counts := map[RestrictionKind]int{KindBan: 0, KindMute: 0}
	for _, r := range ix.list {
		if inForce(r, now) {
			counts[r.Kind]++
		}
	}
	for k, n := range counts {
		c.g.WithLabelValues(string(k)).Set(float64(n))
	}
	c.g.Collect(ch)
}

// rebuild makes a new index from all and settings; mu must be held (or
// New be running).
func (md *moderation) rebuild() {
	ix := &modIndex{
		n:        len(md.all),
		accounts: make(map[string][]*Restriction),
		names:    make(map[string][]*Restriction),
		addrOne:  make(map[netip.Addr][]*Restriction),
		settings: make(map[string]RoomSettings, len(md.settings)),
		kinds:    make(map[RestrictionKind]int),
	}
	for _, r := range md.all {
		rp := new(Restriction)
		*rp = r
		ix.list = append(ix.list, rp)
		ix.kinds[r.Kind]++
		switch t := r.Target; {
		case t.Account != "":
			ix.accounts[t.Account] = append(ix.accounts[t.Account], rp)
		case t.Name != "":
			for _, k := range nameKeys(t.Name) {
				ix.names[k] = append(ix.names[k], rp)
			}
		case t.Addr != "":
			switch p, err := parseTarget(t.Addr); {
			case err != nil:
			case p.IsSingleIP():
				ix.addrOne[p.Addr()] = append(ix.addrOne[p.Addr()], rp)
			default:
				ix.addrs = append(ix.addrs, addrRestriction{p, rp})
			}
		}
	}
	slices.SortFunc(ix.list, func(a, b *Restriction) int { return a.Created.Compare(b.Created) })
	for room, st := range md.settings {
		ix.settings[room] = st
		if st.Slow > 0 {
			ix.slow++
		}
	}
	md.idx.Store(ix)
}

// inForce reports whether r applies at now: not expired.
func inForce(r *Restriction, now time.Time) bool {
	return r.Expires.IsZero() || now.Before(r.Expires)
}

// appliesIn reports whether r (room "" = every room) covers room.
func appliesIn(r *Restriction, room string) bool { return r.Room == "" || r.Room == room }

// find returns the restriction of kind in room on sub in force at now, or
// nil; when several apply, the one that lasts longest.
func (ix *modIndex) find(kind RestrictionKind, room string, sub subject, now time.Time) *Restriction {
	if ix.n == 0 {
		return nil
	}
	var best *Restriction
	consider := func(rs []*Restriction) {
		for _, r := range rs {
			if r.Kind != kind || !appliesIn(r, room) || !inForce(r, now) {
				continue
			}
			if best == nil || lastsLonger(r, best) {
				best = r
			}
		}
	}
	if sub.account != "" {
		consider(ix.accounts[sub.account])
	} else if sub.name != "" && len(ix.names) > 0 {
		keys := sub.keys
		if keys == nil {
			keys = nameKeys(sub.name)
		}
		for _, k := range keys {
			consider(ix.names[k])
		}
	}
	if a := sub.addr.Unmap(); a.IsValid() {
		consider(ix.addrOne[a])
		for _, ar := range ix.addrs {
			if ar.p.Contains(a) {
				consider([]*Restriction{ar.r})
			}
		}
	}
	return best
}

// lastsLonger reports whether a ends after b (never ending last).
func lastsLonger(a, b *Restriction) bool {
	switch {
	case b.Expires.IsZero():
		return false
	case a.Expires.IsZero():
		return true
	}
	return a.Expires.After(b.Expires)
}

// memberSubject is m as a moderation subject, under name.
func (m *member) subject(name string) subject {
	sub := subject{account: m.account, addr: m.client}
	if m.account == "" {
		sub.name = name
	}
	return sub
}

// restricted returns the restriction of kind on m in its room now, or nil.
// It costs one atomic load when there is no restriction at all.
func (s *Server) restricted(kind RestrictionKind, m *member, name string) *Restriction {
	ix := s.mod.idx.Load()
	if ix.n == 0 {
		return nil
	}
	sub := m.subject(name)
	if sub.name != "" && len(ix.names) > 0 {
		sub.keys = m.nameKeysOf(name)
	}
	return ix.find(kind, m.roomName, sub, s.cfg.Clock.Now())
}

// isModerator reports whether roles moderate room: the room rules'
// moderate list, or the role "admin". (Not s.allows: without rules
// nobody moderates.)
func (s *Server) isModerator(room string, roles []string) bool {
	return slices.Contains(roles, RoleAdmin) || s.cfg.RoomRules.Allows(room, rolesOrGuest(roles), ActionModerate)
}

// restrictionText is what the target of r is told: "you are banned from
// lobby until 2026-01-01 10:00 UTC: spam".
func restrictionText(r *Restriction, room string) string {
	var b strings.Builder
	b.WriteString("you are ")
	if r.Kind == KindBan {
		b.WriteString("banned from ")
	} else {
		b.WriteString("muted in ")
	}
	if r.Room == "" {
		b.WriteString("every room")
	} else {
		b.WriteString(room)
	}
	if !r.Expires.IsZero() {
		b.WriteString(" until ")
		b.WriteString(r.Expires.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if r.Reason != "" {
		b.WriteString(": ")
		b.WriteString(r.Reason)
	}
	return b.String()
}

// banRefusal returns why a handshake for room from sub is refused by a
// ban, or "" (counted and logged when refused).
func (s *Server) banRefusal(room string, sub subject, remote string) string {
	ix := s.mod.idx.Load()
	if ix.n == 0 {
		return ""
	}
	r := ix.find(KindBan, room, sub, s.cfg.Clock.Now())
	if r == nil {
		return ""
	}
	s.metrics.mod.refusedBan.Add(1)
	s.log.Info("chat: banned client refused", "room", room, "target", targetString(r.Target), "remote", remote)
	return restrictionText(r, room)
}

// adminAsRefusal returns why an admin post under name in room is refused
// by a ban or mute in force, worded as the handshake refusal words it, or
// "" (counted and logged when refused). The admin API acts as the server,
// but posting "as" a restricted name would let it speak for someone the
// moderators silenced, so name is checked as a guest's name is (its
// look-alikes too), and with the restrictions of every account that owns
// or holds it or a look-alike (accountNames), and the address of a member
// of the room using it now: a name is not an identity, so any match
// refuses. A ban is reported before a mute. The default
// sender, adminServerName, is never matched.
func (s *Server) adminAsRefusal(room, name, remote string) string {
	if name == adminServerName {
		return ""
	}
	ix := s.mod.idx.Load()
	if ix.n == 0 {
		return ""
	}
	now := s.cfg.Clock.Now()
	keys := nameKeys(name)
	subs := []subject{{name: name, keys: keys}}
	for _, id := range s.accounts.claimants(name) {
		subs = append(subs, subject{account: id})
	}
	// A member of the room using the name now brings its address too: a
	// guest banned or muted by address is "them" as well.
	s.mu.Lock()
	for _, m := range s.sessions {
		if m.roomName == room && m.client.IsValid() && sharesKey(keys, m.nameKeysOf(m.currentName())) {
			subs = append(subs, subject{addr: m.client})
		}
	}
	s.mu.Unlock()
	for _, kind := range [...]RestrictionKind{KindBan, KindMute} {
		var best *Restriction
		for _, sub := range subs {
			if r := ix.find(kind, room, sub, now); r != nil && (best == nil || lastsLonger(r, best)) {
				best = r
			}
		}
		if best == nil {
			continue
		}
		if kind == KindBan {
			s.metrics.mod.refusedBan.Add(1)
		} else {
			s.metrics.mod.refusedMute.Add(1)
		}
		s.log.Info("chat: admin post refused: the name is restricted", "kind", kind, "room", room, "as", name, "target", targetString(best.Target), "remote", remote)
		return restrictionText(best, room)
	}
	return ""
}

// sharesKey reports whether two names' nameKeys share one: the names are
// the same or look-alikes.
func sharesKey(a, b []string) bool {
	for _, k := range b {
		if slices.Contains(a, k) {
			return true
		}
	}
	return false
}

// claimants returns the accounts that own or hold name or a look-alike
// (compared by nameKeys, as claimedByOther does).
func (a *accountNames) claimants(name string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, k := range nameKeys(name) {
		if h := a.keys[k]; h != nil && !slices.Contains(ids, h.id) {
			ids = append(ids, h.id)
		}
		if id, ok := a.owned[k]; ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// muteRefusal returns the error text for a message of m refused by a mute
// (counted), or "".
func (s *Server) muteRefusal(m *member) string {
	r := s.restricted(KindMute, m, m.currentName())
	if r == nil {
		return ""
	}
	s.metrics.mod.refusedMute.Add(1)
	return "message not sent: " + restrictionText(r, m.roomName)
}

// slowKey is whom slow mode counts: an account, or a guest's connection.
type slowKey struct {
	account string
	session uint64
}

// slowRefusal applies slow mode to a message of m at now (room
// goroutine): the error text when it comes too soon after the last one of
// m's account (of m, for a guest) in the room (counted), else "" and the
// message counts as the last one.
func (r *room) slowRefusal(m *member, now time.Time) string {
	s := r.srv
	ix := s.mod.idx.Load()
	if ix.slow == 0 {
		return ""
	}
	slow := ix.settings[r.name].Slow
	if slow <= 0 || s.isModerator(r.name, m.currentRoles()) {
		return ""
	}
	key := slowKey{account: m.account}
	if m.account == "" {
		key.session = m.id
	}
	if last, ok := r.slowLast[key]; ok {
		if wait := last.Add(slow).Sub(now); wait > 0 {
			s.metrics.mod.refusedSlow.Add(1)
			return "message not sent: slow mode is on in " + r.name + " (one message per " + formatDuration(slow) +
				"): wait " + formatDuration((wait + time.Second - 1).Truncate(time.Second))
		}
	}
	if r.slowLast == nil {
		r.slowLast = make(map[slowKey]time.Time)
	}
	if len(r.slowLast) > 2*len(r.roster.members)+16 {
		// Forget those whose interval is over: bounded by the posters
		// of one interval, without a timer.
		for k, t := range r.slowLast {
			if !now.Before(t.Add(slow)) {
				delete(r.slowLast, k)
			}
		}
	}
	r.slowLast[key] = now
	return ""
}

// formatDuration is d for people: "30s", "2m", "1h30m".
func formatDuration(d time.Duration) string {
	d = d.Truncate(time.Second)
	if d < time.Second {
		d = time.Second
	}
	s := d.String() // "30s", "1m0s", "1h30m0s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// isCommand reports whether a chat text is a command for the scripts
// ("/nick bob"; "//" starts a message that begins with a slash).
func isCommand(text string) bool {
	return len(text) > 1 && text[0] == '/' && text[1] != '/'
}

// parseTarget parses an address target: an address or a CIDR prefix.
func parseTarget(addr string) (netip.Prefix, error) {
	if strings.Contains(addr, "/") {
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// targetString names t in the audit log and the log: "account:ID",
// "name:NICK", "addr:CIDR".
func targetString(t Target) string {
	switch {
	case t.Account != "":
		return "account:" + t.Account
	case t.Name != "":
		return "name:" + t.Name
	default:
		return "addr:" + t.Addr
	}
}

// checkTarget validates t and returns it in canonical form: a name as
// checkName gives it, an address as a canonical prefix (a single address
// without "/N").
func (s *Server) checkTarget(t Target) (Target, error) {
	n := 0
	for _, f := range []string{t.Account, t.Name, t.Addr} {
		if f != "" {
			n++
		}
	}
	if n != 1 {
		return t, fmt.Errorf("%w: give exactly one of account, name and address", ErrInvalidRestriction)
	}
	switch {
	case t.Account != "":
		if textProblem(t.Account) != "" || len(t.Account) > 256 {
			return t, fmt.Errorf("%w: account id %q", ErrInvalidRestriction, t.Account)
		}
	case t.Name != "":
		given, err := checkName(t.Name, s.cfg.MaxNameLength)
		if err != nil {
			return t, fmt.Errorf("%w: name: %w", ErrInvalidRestriction, err)
		}
		t.Name = given
	default:
		p, err := parseTarget(t.Addr)
		if err != nil {
			return t, fmt.Errorf("%w: address %q: want an IP address or a CIDR prefix", ErrInvalidRestriction, t.Addr)
		}
		if p.IsSingleIP() {
			t.Addr = p.Addr().String()
		} else {
			t.Addr = p.String()
		}
	}
	return t, nil
}

// checkModRoom validates the room of a restriction ("" = every room) or
// setting.
func checkModRoom(room string, every bool) error {
	if room == "" && every {
		return nil
	}
	if err := ValidRoomName(room); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRestriction, err)
	}
	return nil
}

// checkModText validates a reason or topic: the rules of a chat text, at
// most max bytes.
func checkModText(what, text string, max int) error {
	if len(text) > max {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidRestriction, what, max)
	}
	if why := textProblem(text); why != "" {
		return fmt.Errorf("%w: %s: %s", ErrInvalidRestriction, what, why)
	}
	return nil
}

// Restrict implements Host: it stores the restriction (an error leaves
// nothing in force), writes the audit entry, puts it in force and, for a
// ban, kicks the members it matches (close 1008 with the reason).
func (s *Server) Restrict(kind RestrictionKind, room string, t Target, d time.Duration, reason, by string) error {
	if kind != KindBan && kind != KindMute {
		return fmt.Errorf("%w: kind %q: want ban or mute", ErrInvalidRestriction, kind)
	}
	if err := checkModRoom(room, true); err != nil {
		return err
	}
	t, err := s.checkTarget(t)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%w: negative duration", ErrInvalidRestriction)
	}
	if err := checkModText("reason", reason, s.cfg.MaxTextBytes); err != nil {
		return err
	}
	md := &s.mod
	md.mu.Lock()
	now := s.cfg.Clock.Now().UTC()
	old, replaced := md.all[modKey{kind, room, t}]
	r := Restriction{Kind: kind, Room: room, Target: t, Created: now, By: by, Reason: reason}
	if d > 0 {
		r.Expires = now.Add(d)
	}
	if md.store != nil {
		pending := s.sharedWrote(restrictionKey(kind, room, t), restrictionFP(&r))
		if err := md.store.PutRestriction(r); err != nil {
			pending()
			md.mu.Unlock()
			s.metrics.mod.storeErrors.Add(1)
			s.log.Error("chat: storing a restriction failed: not in force", "kind", kind, "room", room, "target", targetString(t), "err", err)
			return fmt.Errorf("%s not made: the server could not store it: %w", kind, err)
		}
	}
	md.all[modKey{kind, room, t}] = r
	md.rebuild()
	s.armModTimerLocked()
	md.mu.Unlock()
	if replaced && !inForce(&old, now) {
		// It expired but was not swept yet: its expiry is audited here,
		// as the sweep would have.
		s.writeAudit(expiryAudit(&old, now))
	}
	s.log.Info("chat: restriction made", "kind", kind, "room", room, "target", targetString(t), "by", by, "expires", r.Expires, "reason", reason)
	s.writeAudit(AuditEntry{Time: now, Room: room, By: by, Action: string(kind), Target: targetString(t), Reason: auditReason(reason, d)})
	if kind == KindBan {
		s.kickBanned(&r)
	}
	return nil
}

// auditReason is a restriction's reason in the audit log, with its
// duration when it has one.
func auditReason(reason string, d time.Duration) string {
	if d <= 0 {
		return reason
	}
	if reason == "" {
		return "for " + formatDuration(d)
	}
	return reason + " (for " + formatDuration(d) + ")"
}

// kickBanned closes the connections r matches with 1008 and the reason.
func (s *Server) kickBanned(r *Restriction) {
	ix := &modIndex{n: 1, accounts: map[string][]*Restriction{}, names: map[string][]*Restriction{}, addrOne: map[netip.Addr][]*Restriction{}}
	switch t := r.Target; {
	case t.Account != "":
		ix.accounts[t.Account] = []*Restriction{r}
	case t.Name != "":
		for _, k := range nameKeys(t.Name) {
			ix.names[k] = []*Restriction{r}
		}
	default:
		p, err := parseTarget(t.Addr)
		if err != nil {
			return
		}
		ix.addrs = []addrRestriction{{p, r}}
	}
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	var hit []*member
	for _, m := range s.sessions {
		if ix.find(KindBan, m.roomName, m.subject(m.currentName()), now) != nil {
			hit = append(hit, m)
		}
	}
	s.mu.Unlock()
	for _, m := range hit {
		text := restrictionText(r, m.roomName)
		s.log.Info("chat: banned member kicked", "room", m.roomName, "session", m.id, "target", targetString(r.Target))
		m.room.enqueue(op{kind: opKick, m: m, notice: text, closeCode: ws.StatusPolicyViolation})
	}
}

// Lift implements Host: it removes a ban or a mute (false when there was
// none in force). A store error leaves it in force and is returned.
func (s *Server) Lift(kind RestrictionKind, room string, t Target, by string) (bool, error) {
	if kind != KindBan && kind != KindMute {
		return false, fmt.Errorf("%w: kind %q: want ban or mute", ErrInvalidRestriction, kind)
	}
	if err := checkModRoom(room, true); err != nil {
		return false, err
	}
	t, err := s.checkTarget(t)
	if err != nil {
		return false, err
	}
	md := &s.mod
	md.mu.Lock()
	key := modKey{kind, room, t}
	r, had := md.all[key]
	if !had {
		md.mu.Unlock()
		return false, nil
	}
	deleted := true
	if md.store != nil {
		pending := s.sharedWrote(restrictionKey(kind, room, t), restrictionFP(nil))
		var err error
		deleted, err = md.store.DeleteRestriction(kind, room, t)
		if err != nil || !deleted {
			pending() // no echo of this node's to wait for
		}
		if err != nil {
			md.mu.Unlock()
			s.metrics.mod.storeErrors.Add(1)
			s.log.Error("chat: lifting a restriction failed: still in force", "kind", kind, "room", room, "target", targetString(t), "err", err)
			return false, fmt.Errorf("un%s failed: the server could not store it: %w", kind, err)
		}
	}
	delete(md.all, key)
	md.rebuild()
	s.armModTimerLocked()
	now := s.cfg.Clock.Now().UTC()
	md.mu.Unlock()
	if s.shared != nil && !deleted {
		// Another node lifted it, or swept its expiry, a moment ago
		// (its change not handed in yet): that node audits it.
		return false, nil
	}
	if !inForce(&r, now) {
		// It had expired but was not swept yet: swept here, and its
		// expiry audited as the sweep would have.
		s.writeAudit(expiryAudit(&r, now))
		return false, nil
	}
	s.log.Info("chat: restriction lifted", "kind", kind, "room", room, "target", targetString(t), "by", by)
	s.writeAudit(AuditEntry{Time: now, Room: room, By: by, Action: "un" + string(kind), Target: targetString(t)})
	return true, nil
}

// Restrictions implements Host: the restrictions in force in room (those
// of every room included), oldest first; room "" lists every one.
func (s *Server) Restrictions(room string) []Restriction {
	ix := s.mod.idx.Load()
	now := s.cfg.Clock.Now()
	var out []Restriction
	for _, r := range ix.list {
		if inForce(r, now) && (room == "" || appliesIn(r, room)) {
			out = append(out, *r)
		}
	}
	return out
}

// SetRoomSettings implements Host: it stores room's settings (an error
// changes nothing), audits each change as by and tells the room's
// members: a "topic" event and a notice for the topic, a notice for slow
// mode. TopicBy and TopicSince are set here when the topic changes.
func (s *Server) SetRoomSettings(room string, rs RoomSettings, by string) error {
	if err := checkModRoom(room, false); err != nil {
		return err
	}
	if err := checkModText("topic", rs.Topic, maxTopicBytes); err != nil {
		return err
	}
	if rs.Slow < 0 || rs.Slow > maxSlow {
		return fmt.Errorf("%w: slow mode must be between 0 (off) and %s", ErrInvalidRestriction, maxSlow)
	}
	md := &s.mod
	md.mu.Lock()
	old := md.settings[room]
	now := s.cfg.Clock.Now().UTC()
	next := RoomSettings{Topic: rs.Topic, Slow: rs.Slow.Round(time.Second)}
	if rs.Slow > 0 && next.Slow == 0 {
		next.Slow = time.Second
	}
	topicChanged := next.Topic != old.Topic
	slowChanged := next.Slow != old.Slow
	switch {
	case next.Topic == "":
	case topicChanged:
		next.TopicBy, next.TopicSince = by, now
	default:
		next.TopicBy, next.TopicSince = old.TopicBy, old.TopicSince
	}
	if !topicChanged && !slowChanged {
		md.mu.Unlock()
		return nil
	}
	if md.store != nil {
		pending := s.sharedWrote("s"+room, settingsFP(next))
		if err := md.store.PutRoomSettings(room, next); err != nil {
			pending()
			md.mu.Unlock()
			s.metrics.mod.storeErrors.Add(1)
			s.log.Error("chat: storing room settings failed: unchanged", "room", room, "err", err)
			return fmt.Errorf("room settings of %s not changed: the server could not store them: %w", room, err)
		}
	}
	if next == (RoomSettings{}) {
		delete(md.settings, room)
	} else {
		md.settings[room] = next
	}
	md.rebuild()
	md.mu.Unlock()
	if topicChanged {
		s.writeAudit(AuditEntry{Time: now, Room: room, By: by, Action: auditTopic, Reason: next.Topic})
	}
	if slowChanged {
		what := "off"
		if next.Slow > 0 {
			what = formatDuration(next.Slow)
		}
		s.writeAudit(AuditEntry{Time: now, Room: room, By: by, Action: auditSlow, Reason: what})
	}
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r != nil {
		r.enqueue(op{kind: opSettings, settings: &settingsChange{rs: next, by: by, topic: topicChanged, slow: slowChanged}})
	}
	return nil
}

// RoomSettings implements Host.
func (s *Server) RoomSettings(room string) RoomSettings {
	return s.mod.idx.Load().settings[room]
}

// Audit implements Host: up to n entries (at most Config.APILimit) of room
// ("" = all) at or after since, oldest first.
func (s *Server) Audit(room string, since time.Time, n int) ([]AuditEntry, error) {
	if n <= 0 {
		return nil, nil
	}
	n = min(n, s.cfg.APILimit)
	md := &s.mod
	if md.store != nil {
		es, err := md.store.Audit(room, since, n)
		if err != nil {
			return nil, fmt.Errorf("reading the audit log: %w", err)
		}
		return es, nil
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	var out []AuditEntry
	for _, e := range md.audit {
		if (room == "" || e.Room == room) && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return slices.Clone(out), nil
}

// writeAudit appends e to the audit log; a failure is logged and counted
// (the action it records stands).
func (s *Server) writeAudit(e AuditEntry) {
	md := &s.mod
	if md.store != nil {
		s.writeAuditLocked(e) // the store needs no lock of ours
		return
	}
	md.mu.Lock()
	s.writeAuditLocked(e)
	md.mu.Unlock()
}

// writeAuditLocked is writeAudit with md.mu held (or, with a store, not).
func (s *Server) writeAuditLocked(e AuditEntry) {
	md := &s.mod
	if md.store != nil {
		if err := md.store.AppendAudit(e); err != nil {
			s.metrics.mod.auditErrors.Add(1)
			s.log.Error("chat: writing the audit log failed", "action", e.Action, "room", e.Room, "by", e.By, "target", e.Target, "err", err)
		}
		return
	}
	md.audit = append(md.audit, e)
	if len(md.audit) > memoryAuditMax {
		md.audit = slices.Delete(md.audit, 0, len(md.audit)-memoryAuditMax)
	}
}

// KickBy is Host.Kick with the audit log's "by" (Host.Kick writes
// "script"): it closes the member's connection with 1000 after sending
// reason as a notice, and audits the kick.
func (s *Server) KickBy(sessionID uint64, reason, by string) error {
	if remote, err := s.kickRemote(sessionID, reason, by); remote {
		return err // another node's member: its node kicks and audits
	}
	m := s.session(sessionID)
	if m == nil {
		return ErrNoSuchUser
	}
	if !m.room.enqueue(op{kind: opKick, m: m, notice: reason}) {
		return ErrServerClosed
	}
	target := "name:" + m.currentName()
	if m.account != "" {
		target = "account:" + m.account
	}
	s.writeAudit(AuditEntry{Time: s.cfg.Clock.Now().UTC(), Room: m.roomName, By: by, Action: auditKick, Target: target, Reason: reason})
	return nil
}

// RedactBy is Host.Redact with the audit log's "by" (Host.Redact writes
// "script"): the message is deleted for good, the room told, and the
// deletion audited.
func (s *Server) RedactBy(room string, id uint64, by string) error {
	if err := s.redact(room, id); err != nil {
		return err
	}
	s.writeAudit(AuditEntry{Time: s.cfg.Clock.Now().UTC(), Room: room, By: by, Action: auditDelete, Target: strconv.FormatUint(id, 10)})
	return nil
}

// armModTimerLocked (re)arms the sweep timer for the earliest expiry; mu
// must be held.
func (s *Server) armModTimerLocked() {
	md := &s.mod
	if md.closed {
		return
	}
	var next time.Time
	for _, r := range md.all {
		if !r.Expires.IsZero() && (next.IsZero() || r.Expires.Before(next)) {
			next = r.Expires
		}
	}
	if next.IsZero() {
		if md.timer != nil {
			md.timer.Stop()
		}
		return
	}
	d := max(next.Sub(s.cfg.Clock.Now()), 0)
	if md.timer == nil {
		md.timer = s.cfg.Clock.AfterFunc(d, s.sweepRestrictions)
	} else {
		md.timer.Reset(d)
	}
}

// sweepRestrictions runs in the timer's goroutine: it removes expired
// restrictions from the index and the store, audits each expiry (by
// "server", expiryAudit) and re-arms the timer. One that expired while
// the server was down is loaded by New and swept at once.
//
// An expiry is audited once: with its removal from the store. When that
// removal fails, it is logged and not audited (an expired restriction
// applies nowhere anyway); the next start loads it again, sweeps it and
// audits it then. In a cluster every node sweeps it; only the node whose
// DeleteRestriction reported true (the SharedState's promise: exactly one
// does) audits it. Everything is done under mu, so Shutdown
// (stopModeration) returns only once a sweep under way has written all
// it had to.
func (s *Server) sweepRestrictions() {
	md := &s.mod
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed {
		return
	}
	now := s.cfg.Clock.Now()
	var expired []*Restriction
	changed := false
	for key, r := range md.all {
		if inForce(&r, now) {
			continue
		}
		delete(md.all, key)
		changed = true
		s.log.Info("chat: restriction expired", "kind", key.kind, "room", key.room, "target", targetString(key.t))
		if md.store != nil {
			pending := s.sharedWrote(restrictionKey(key.kind, key.room, key.t), restrictionFP(nil))
			deleted, err := s.deleteExpired(&r) // shared.go
			if err != nil || !deleted {
				pending() // no echo of this node's to wait for
			}
			if s.shared != nil && err == nil && !deleted {
				continue // another node removed it (and audits it) or replaced it
			}
			if err != nil {
				s.log.Warn("chat: removing an expired restriction from the store failed (it no longer applies; its expiry is audited when a later start removes it)", "kind", key.kind, "room", key.room, "target", targetString(key.t), "err", err)
				continue
			}
		}
		expired = append(expired, &r)
	}
	if changed {
		md.rebuild()
	}
	slices.SortFunc(expired, func(a, b *Restriction) int { return a.Expires.Compare(b.Expires) })
	for _, r := range expired {
		s.writeAuditLocked(expiryAudit(r, now))
	}
	s.armModTimerLocked()
}

// stopModeration stops the sweep timer for good (Shutdown).
func (s *Server) stopModeration() {
	md := &s.mod
	md.mu.Lock()
	defer md.mu.Unlock()
	md.closed = true
	if md.timer != nil {
		md.timer.Stop()
	}
}

// settingsChange is a change of room settings on its way to the room
// (opSettings).
type settingsChange struct {
	rs          RoomSettings
	by          string
	topic, slow bool
	// stored: handed in by the cluster's watcher (RoomSettingsStored),
	// which does not know who cleared a topic.
	stored bool
}

// settingsChanged tells the room of a settings change (room goroutine): a
// "topic" event (JSON) and a notice for the topic, a notice for slow mode.
func (r *room) settingsChanged(c *settingsChange) {
	if c.topic {
		if len(r.roster.json) > 0 {
			start := len(r.out.arena)
			r.out.arena = appendJSONTopic(r.out.arena, r.name, &c.rs)
			r.out.json = append(r.out.json, span{start, len(r.out.arena)})
		}
		switch {
		case c.rs.Topic == "" && c.stored:
			r.outSystem("the topic was cleared")
		case c.rs.Topic == "":
			r.outSystem(c.by + " cleared the topic")
		default:
			r.outSystem(c.by + " set the topic: " + c.rs.Topic)
		}
	}
	if c.slow {
		r.outSystem(slowText(c.rs.Slow))
	}
}

// slowText announces slow mode.
func slowText(slow time.Duration) string {
	if slow <= 0 {
		return "slow mode is off"
	}
	return "slow mode is on: one message per " + formatDuration(slow) + " per member (moderators exempt)"
}

// settingsFrames are what a newcomer gets about the room's settings after
// its welcome: the topic ("topic" event in JSON, a notice in plain text)
// and slow mode (a notice).
func (r *room) settingsFrames(m *member) [][]byte {
	ix := r.srv.mod.idx.Load()
	if len(ix.settings) == 0 {
		return nil
	}
	st, ok := ix.settings[r.name]
	if !ok {
		return nil
	}
	var frames [][]byte
	if st.Topic != "" {
		if m.format == formatJSON {
			frames = append(frames, appendJSONTopic(nil, r.name, &st))
		} else {
			frames = append(frames, appendPlainNotice(nil, "topic: "+st.Topic))
		}
	}
	if st.Slow > 0 {
		frames = append(frames, m.appendNotice(nil, r.name, slowText(st.Slow)))
	}
	return frames
}

// appendJSONTopic appends a "topic" event: {"type":"topic","room":R,
// "topic":T,"by":N,"since":TS} (by and since left out when the topic is
// cleared).
func appendJSONTopic(b []byte, room string, st *RoomSettings) []byte {
	b = append(b, `{"type":"topic","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, st.Topic)
	if st.Topic != "" {
		b = append(b, `,"by":`...)
		b = appendJSONString(b, st.TopicBy)
		b = append(b, `,"since":"`...)
		b = st.TopicSince.UTC().AppendFormat(b, tsLayout)
		b = append(b, '"')
	}
	return append(b, '}')
}
