package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// Presence is the cluster-wide roster (chat.Presence) on the key-value
// bucket <stream>_roster, with node liveness on <stream>_nodes (alive.go).
//
// Keys (tokens as tok makes them):
//
//	r.<node>.<room>.<session>  a member: rosterValue (JSON, ~100 bytes)
//	n.<room>.<name key>        a held name key: "<node token>.<incarnation>.<session>"
//
// Claim creates a member's name keys with an expected revision of 0 (the
// bucket refuses a key that exists: exactly one claimer wins), then
// writes its entry. A name key whose holder is gone (its node dead, or an
// earlier process of its node: another incarnation) is taken over with a
// revision check; one held by a live member is chat.ErrNameTaken.
// Removals are purges whose markers the bucket drops after markerTTL, so
// that members who left do not pile up in the bucket.
type Presence struct {
	l       *Log
	cfg     PresenceConfig
	roster  jetstream.KeyValue
	nodes   jetstream.KeyValue
	node    string
	nodeTok string

	mu      sync.Mutex
	inc     string                 // this process's incarnation (alive.go)
	mine    map[member]*held       // this node's members, as claimed
	busy    map[member]*memberLock // members with a Claim, Release or retried release under way
	pending map[member]*held       // releases that failed: retried by Run
	hb      heartbeat              // alive.go
	seen    map[string]*nodeSeen   // other nodes' heartbeats, by node token (alive.go)
	watchOK time.Time              // when Run's watch last saw this node's own heartbeat

	stats presenceCounters
}

// presenceCounters are PresenceStats' counters.
type presenceCounters struct {
	nodesPurged, membersPurged, membersLost atomic.Uint64
	claimsUnavailable, claimsTaken          atomic.Uint64
}

// PresenceStats are a Presence's counters since OpenPresence, for
// /metrics (cmd/moonchat exports them).
type PresenceStats struct {
	// Pending is how many of this node's members' releases wait for NATS
	// now (a gauge, as Pending returns it): Run retries them once NATS is
	// back; until then their names stay held in the cluster.
	Pending int
	// NodesPurged counts the dead nodes this node purged (it marked their
	// heartbeat dead first: one survivor per death).
	NodesPurged uint64
	// MembersPurged counts the roster entries of dead nodes this node
	// removed in those purges.
	MembersPurged uint64
	// MembersLost counts this node's members whose name another member
	// took while this node was counted dead (PresenceConfig.OnLost).
	MembersLost uint64
	// ClaimsUnavailable counts Claims refused because NATS could not be
	// reached or did not answer in time (a join or rename refused: fail
	// closed).
	ClaimsUnavailable uint64
	// ClaimsTaken counts Claims refused with chat.ErrNameTaken.
	ClaimsTaken uint64
}

// Stats returns the Presence's counters.
func (p *Presence) Stats() PresenceStats {
	return PresenceStats{
		Pending:           p.Pending(),
		NodesPurged:       p.stats.nodesPurged.Load(),
		MembersPurged:     p.stats.membersPurged.Load(),
		MembersLost:       p.stats.membersLost.Load(),
		ClaimsUnavailable: p.stats.claimsUnavailable.Load(),
		ClaimsTaken:       p.stats.claimsTaken.Load(),
	}
}

// PresenceConfig configures OpenPresence. The zero value is usable.
type PresenceConfig struct {
	// Heartbeat is how often the node renews its heartbeat (0 = 2s).
	Heartbeat time.Duration
	// DeadAfter is how long a node's heartbeat may stay unchanged before
	// the other nodes count it dead and purge its members (0 = 10s). It
	// must be several Heartbeats.
	DeadAfter time.Duration
	// OnLost, when set, is called (from Run's goroutine) for each of this
	// node's members whose name another member took while this node was
	// counted dead (cut off from NATS longer than DeadAfter): the member
	// is no longer in the cluster's roster, and the chat server should
	// rename or disconnect it.
	OnLost func(room string, session uint64)
}

// member names one of this node's members.
type member struct {
	room    string
	session uint64
}

// memberLock orders the Claims and Releases of one member (and the retry
// of its failed release): each reads what the one before it left.
type memberLock struct {
	mu   sync.Mutex
	refs int // under Presence.mu
}

// lockMember locks m's memberLock and returns its unlock.
func (p *Presence) lockMember(m member) (unlock func()) {
	p.mu.Lock()
	ml := p.busy[m]
	if ml == nil {
		ml = &memberLock{}
		p.busy[m] = ml
	}
	ml.refs++
	p.mu.Unlock()
	ml.mu.Lock()
	return func() {
		ml.mu.Unlock()
		p.mu.Lock()
		if ml.refs--; ml.refs == 0 {
			delete(p.busy, m)
		}
		p.mu.Unlock()
	}
}

// held is what one of this node's members holds: its entry and the
// revisions of its name keys (to release them with a revision check: a
// key another member took over since is left alone).
type held struct {
	e    chat.PresenceEntry
	revs map[string]uint64 // name key → revision (0: unknown, a claim without an answer)
	rev  uint64            // the roster entry's revision (0 = not written)
}

// rosterValue is a member's entry as stored: short names, it is stored
// and watched once per member per node.
type rosterValue struct {
	Inc     string   `json:"i"`
	Name    string   `json:"n"`
	Keys    []string `json:"k"`
	Revs    []uint64 `json:"v"`
	Account string   `json:"a,omitempty"`
	Roles   []string `json:"r,omitempty"`
	Joined  int64    `json:"j"` // Unix milliseconds
}

// OpenPresence opens the roster on l's connection as node l's Config.Node
// (which must be set): it takes the node's heartbeat (refusing with
// ErrNodeInUse while another live process has it), then removes what an
// earlier process of this node left in the roster. Run must run from now
// on (else the other nodes count this one dead after DeadAfter).
func (l *Log) OpenPresence(ctx context.Context, cfg PresenceConfig) (*Presence, error) {
	if l.cfg.Node == "" {
		return nil, errors.New("cluster: presence needs a node name ([cluster] node)")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 10 * time.Second
	}
	if cfg.DeadAfter < 3*cfg.Heartbeat {
		return nil, fmt.Errorf("cluster: presence: dead after %v is less than 3 heartbeats (%v)", cfg.DeadAfter, cfg.Heartbeat)
	}
	roster, err := l.openBucket(ctx, bucketRoster, "cluster roster")
	if err != nil {
		return nil, err
	}
	nodes, err := l.openBucket(ctx, bucketNodes, "node heartbeats and leases")
	if err != nil {
		return nil, err
	}
	p := &Presence{
		l: l, cfg: cfg, roster: roster, nodes: nodes,
		node: l.cfg.Node, nodeTok: tok(l.cfg.Node),
		mine: make(map[member]*held), busy: make(map[member]*memberLock), pending: make(map[member]*held),
		seen: make(map[string]*nodeSeen),
	}
	if err := p.takeNode(ctx); err != nil {
		return nil, err
	}
	if _, err := p.purgeNode(ctx, p.nodeTok, func(inc string) bool { return inc != p.incarnation() }); err != nil {
		return nil, err
	}
	return p, nil
}

// Node is this node's name.
func (p *Presence) Node() string { return p.node }

// Compile-time check: Presence is a chat.Presence.
var _ chat.Presence = (*Presence)(nil)

// rosterKey is the key of node's member session in room.
func rosterKey(nodeTok, room string, session uint64) string {
	return "r." + nodeTok + "." + tok(room) + "." + strconv.FormatUint(session, 10)
}

// parseRosterKey is rosterKey's inverse.
func parseRosterKey(key string) (node, room string, session uint64, err error) {
	parts := strings.Split(key, ".")
	if len(parts) != 4 || parts[0] != "r" {
		return "", "", 0, fmt.Errorf("%w: roster key %q", ErrCorrupt, key)
	}
	node, err1 := untok(parts[1])
	room, err2 := untok(parts[2])
	session, err3 := strconv.ParseUint(parts[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", "", 0, fmt.Errorf("%w: roster key %q", ErrCorrupt, key)
	}
	return node, room, session, nil
}

// nameKey is the key of name key k in room.
func nameKey(room, k string) string { return "n." + tok(room) + "." + tok(k) }

// holder is the value of a name key: who holds it.
func holder(nodeTok, inc string, session uint64) string {
	return nodeTok + "." + inc + "." + strconv.FormatUint(session, 10)
}

// parseHolder is holder's inverse.
func parseHolder(v string) (nodeTok, inc string, session uint64, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", "", 0, false
	}
	s, err := strconv.ParseUint(parts[2], 10, 64)
	return parts[0], parts[1], s, err == nil
}

// incarnation returns this process's current incarnation.
func (p *Presence) incarnation() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inc
}

// ready refuses at once while NATS is unreachable.
func (p *Presence) ready(what string) error {
	if err := p.l.usable(); err != nil {
		return p.l.unreachable(what, err)
	}
	return nil
}

// Claim records this node's member e.Session in room as e.Name, holding
// e.Keys (chat.Presence.Claim): chat.ErrNameTaken when another member of
// the cluster holds one of them, an error wrapping chat.ErrUnavailable
// when NATS cannot be reached. A second Claim of the same session in room
// replaces the first; the keys it no longer uses are released once the
// new ones are held.
func (p *Presence) Claim(ctx context.Context, room string, e chat.PresenceEntry) error {
	if e.Node != "" && e.Node != p.node {
		return fmt.Errorf("cluster: claim for node %q on node %q", e.Node, p.node)
	}
	e.Node = p.node
	err := p.ready("claim")
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, p.l.cfg.PublishTimeout)
		defer cancel()
		defer p.lockMember(member{room, e.Session})()
		err = p.claim(ctx, room, e, true)
	}
	switch {
	case errors.Is(err, chat.ErrNameTaken):
		p.stats.claimsTaken.Add(1)
	case errors.Is(err, chat.ErrUnavailable):
		p.stats.claimsUnavailable.Add(1)
	}
	return err
}

// claim is Claim with the member locked. reuse: the name keys the member
// holds already are kept as they are (false: claimed again, as after a
// new incarnation).
func (p *Presence) claim(ctx context.Context, room string, e chat.PresenceEntry, reuse bool) error {
	m := member{room, e.Session}
	p.mu.Lock()
	inc := p.inc
	var old map[string]uint64
	if h := p.mine[m]; h != nil && reuse {
		old = h.revs
	}
	stale := p.pending[m] // a release that failed: its keys are ours to reuse or release
	delete(p.pending, m)
	p.mu.Unlock()

	h := &held{e: e, revs: make(map[string]uint64, len(e.Keys))}
	var fresh []string // keys this call took: given back if it fails
	var err error
	for _, k := range e.Keys {
		if _, dup := h.revs[k]; dup {
			continue
		}
		if rev, ok := old[k]; ok {
			h.revs[k] = rev
			continue
		}
		var rev uint64
		rev, err = p.claimKey(ctx, room, k, holder(p.nodeTok, inc, e.Session))
		if err != nil {
			if !errors.Is(err, chat.ErrNameTaken) {
				// No answer: the key may have been stored all the
				// same. Given back if it holds this member (rev 0).
				h.revs[k] = 0
				fresh = append(fresh, k)
			}
			break
		}
		h.revs[k] = rev
		fresh = append(fresh, k)
	}
	if err == nil {
		h.rev, err = p.putEntry(ctx, room, inc, h)
	}
	if err != nil {
		back := &held{e: e, revs: make(map[string]uint64)}
		for _, k := range fresh {
			back.revs[k] = h.revs[k]
		}
		p.giveBack(ctx, m, back)
		if stale != nil {
			p.giveBack(ctx, m, stale)
		}
		return err
	}
	// Held: release what the member held before and no longer uses.
	gone := &held{revs: make(map[string]uint64)}
	for k, rev := range old {
		if _, keep := h.revs[k]; !keep {
			gone.revs[k] = rev
		}
	}
	if stale != nil {
		for k, rev := range stale.revs {
			if _, keep := h.revs[k]; !keep {
				gone.revs[k] = rev
			}
		}
	}
	p.mu.Lock()
	p.mine[m] = h
	p.mu.Unlock()
	if len(gone.revs) > 0 {
		p.giveBack(ctx, m, gone)
	}
	return nil
}

// claimKey holds name key k of room for who and returns its revision.
func (p *Presence) claimKey(ctx context.Context, room, k, who string) (uint64, error) {
	key := nameKey(room, k)
	for range 4 {
		rev, err := p.roster.Create(ctx, key, []byte(who))
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, p.l.unreachable("claim", err)
		}
		cur, err := p.roster.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // released meanwhile: create again
		}
		if err != nil {
			return 0, p.l.unreachable("claim", err)
		}
		if string(cur.Value()) == who {
			return cur.Revision(), nil // this member's own (a lost acknowledgement)
		}
		gone, err := p.holderGone(ctx, room, string(cur.Value()))
		if err != nil {
			return 0, err
		}
		if !gone {
			return 0, chat.ErrNameTaken
		}
		rev, err = p.roster.Update(ctx, key, []byte(who), cur.Revision())
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, p.l.unreachable("claim", err)
		}
		// Someone else changed it first: look again.
	}
	return 0, chat.ErrNameTaken
}

// holderGone reports whether the holder of a name key (its value) is no
// longer a member: an earlier process of its node, a node that is dead,
// or one of this node's sessions that is neither held nor being claimed
// (a key a failed Claim could not give back).
func (p *Presence) holderGone(ctx context.Context, room, value string) (bool, error) {
	nodeTok, inc, session, ok := parseHolder(value)
	if !ok {
		return true, nil // not ours to keep: nothing valid holds it
	}
	if nodeTok == p.nodeTok {
		p.mu.Lock()
		defer p.mu.Unlock()
		if inc != p.inc {
			return true, nil
		}
		m := member{room, session}
		_, mine := p.mine[m]
		_, busy := p.busy[m]
		return !mine && !busy, nil
	}
	hb, _, err := p.readHeartbeat(ctx, nodeTok)
	if err != nil {
		return false, err
	}
	return hb.Inc != inc || hb.Dead, nil
}

// putEntry writes h's entry and returns its revision.
func (p *Presence) putEntry(ctx context.Context, room, inc string, h *held) (uint64, error) {
	v := rosterValue{Inc: inc, Name: h.e.Name, Account: h.e.Account, Roles: h.e.Roles}
	if !h.e.Joined.IsZero() {
		v.Joined = h.e.Joined.UnixMilli()
	}
	for _, k := range h.e.Keys {
		if rev, ok := h.revs[k]; ok && !containsStr(v.Keys, k) {
			v.Keys = append(v.Keys, k)
			v.Revs = append(v.Revs, rev)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := p.roster.Put(ctx, rosterKey(p.nodeTok, room, h.e.Session), b)
	if err != nil {
		return 0, p.l.unreachable("claim", err)
	}
	return rev, nil
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Release removes this node's member session from room's roster and
// gives its name keys back. When NATS cannot be reached it returns the
// error (wrapping chat.ErrUnavailable) and Run releases them once NATS is
// back; should this node die first, the other nodes purge them.
func (p *Presence) Release(ctx context.Context, room string, session uint64) error {
	m := member{room, session}
	defer p.lockMember(m)()
	p.mu.Lock()
	h := p.mine[m]
	delete(p.mine, m)
	if h == nil {
		h = p.pending[m]
		delete(p.pending, m)
	}
	p.mu.Unlock()
	if h == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.l.cfg.PublishTimeout)
	defer cancel()
	h.rev = 1 // the entry is to be removed (giveBack)
	return p.giveBack(ctx, m, h)
}

// giveBack removes h's entry (h.rev != 0) and name keys, each with a
// revision check (a key another member took over since is left alone).
// What fails is kept in pending, for Run to retry; the error is returned.
func (p *Presence) giveBack(ctx context.Context, m member, h *held) error {
	if err := p.ready("release"); err != nil {
		p.keepPending(m, h)
		return err
	}
	if h.rev != 0 {
		err := p.roster.Purge(ctx, rosterKey(p.nodeTok, m.room, m.session), p.l.purgeTTL())
		if err != nil {
			p.keepPending(m, h)
			return p.l.unreachable("release", err)
		}
		h.rev = 0
	}
	for k, rev := range h.revs {
		if rev == 0 {
			// A claim that got no answer: this member's only if the
			// key names it.
			e, err := p.roster.Get(ctx, nameKey(m.room, k))
			if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
				p.keepPending(m, h)
				return p.l.unreachable("release", err)
			}
			if err != nil || !p.holds(string(e.Value()), m.session) {
				delete(h.revs, k)
				continue
			}
			rev = e.Revision()
		}
		err := p.roster.Purge(ctx, nameKey(m.room, k), jetstream.LastRevision(rev), p.l.purgeTTL())
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			p.keepPending(m, h)
			return p.l.unreachable("release", err)
		}
		delete(h.revs, k)
	}
	return nil
}

// holds reports whether a name key's value names this node's session.
func (p *Presence) holds(value string, session uint64) bool {
	nodeTok, _, s, ok := parseHolder(value)
	return ok && nodeTok == p.nodeTok && s == session
}

// keepPending records what giveBack could not do, merged with what was
// pending for m already.
func (p *Presence) keepPending(m member, h *held) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.pending[m]; q != nil && q != h {
		for k, rev := range q.revs {
			if _, ok := h.revs[k]; !ok {
				h.revs[k] = rev
			}
		}
		if q.rev != 0 {
			h.rev = q.rev
		}
	}
	p.pending[m] = h
}

// retryPending retries the releases that failed (Run, once NATS is back).
func (p *Presence) retryPending(ctx context.Context) {
	p.mu.Lock()
	var todo []member
	for m := range p.pending {
		todo = append(todo, m)
	}
	p.mu.Unlock()
	for _, m := range todo {
		unlock := p.lockMember(m)
		p.mu.Lock()
		h := p.pending[m] // left in pending until done: Pending counts it
		p.mu.Unlock()
		var err error
		if h != nil {
			err = p.giveBack(ctx, m, h)
		}
		if err == nil {
			p.mu.Lock()
			if p.pending[m] == h {
				delete(p.pending, m)
			}
			p.mu.Unlock()
		}
		unlock()
		if err != nil {
			return // still unreachable: next time
		}
	}
}

// Pending returns how many releases wait for NATS (for tests and
// metrics).
func (p *Presence) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
