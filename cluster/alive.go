package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// Node liveness. Each node's Presence keeps a heartbeat key in the bucket
// <stream>_nodes, h.<node token>, holding its incarnation (a random id of
// the process, new again after the node was counted dead) and renewed
// every Heartbeat with a revision check. Every node watches the heartbeat
// keys; a node whose key has not changed for DeadAfter, as seen by a
// survivor whose own heartbeat keeps coming back through the same watch
// (so a node cut off from NATS does not count the others dead), is
// purged by that survivor: it marks the key dead (a revision-checked
// write: one survivor at a time), removes the dead incarnation's members
// and name keys, then deletes the key. Each removal is revision-checked:
// purging twice, or a purge racing the node's return, removes nothing
// that was written anew.
//
// A node that finds its key marked dead or gone when it renews it (it was
// cut off that long) takes a new incarnation and claims its members again
// (a name taken meanwhile: PresenceConfig.OnLost). A node whose key holds
// another live incarnation has a twin — another process with its name —
// and stops (Run returns ErrNodeInUse).

// ErrNodeInUse: another live process uses this node's name ([cluster]
// node must be unique). OpenPresence refuses to start with it; Run
// returns it when the other process took the name while this one was cut
// off (this process must stop).
var ErrNodeInUse = errors.New("cluster: another live moonchat process uses this node name")

// heartbeat is a heartbeat key's value.
type heartbeat struct {
	Inc  string `json:"i"`
	Dead bool   `json:"d,omitempty"` // marked dead by a purging survivor
	rev  uint64
}

// nodeSeen is what the watch of heartbeats saw of one node.
type nodeSeen struct {
	hb    heartbeat
	rev   uint64
	since time.Time // when rev was first seen (local clock)
}

// heartbeatKey is node's heartbeat key.
func heartbeatKey(nodeTok string) string { return "h." + nodeTok }

// newIncarnation returns a random id.
func newIncarnation() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// readHeartbeat returns nodeTok's heartbeat and its revision; a missing
// or deleted key is a dead heartbeat (Inc "").
func (p *Presence) readHeartbeat(ctx context.Context, nodeTok string) (heartbeat, time.Time, error) {
	e, err := p.nodes.Get(ctx, heartbeatKey(nodeTok))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return heartbeat{Dead: true}, time.Time{}, nil
	}
	if errors.Is(err, jetstream.ErrKeyDeleted) {
		return heartbeat{Dead: true, rev: e.Revision()}, e.Created(), nil
	}
	if err != nil {
		return heartbeat{}, time.Time{}, p.l.unreachable("node heartbeat", err)
	}
	var hb heartbeat
	if json.Unmarshal(e.Value(), &hb) != nil || hb.Inc == "" {
		hb = heartbeat{Dead: true}
	}
	hb.rev = e.Revision()
	return hb, e.Created(), nil
}

// writeHeartbeat writes hb over revision rev (0: the key must not exist
// or be deleted) and returns the new revision.
func (p *Presence) writeHeartbeat(ctx context.Context, nodeTok string, hb heartbeat, rev uint64) (uint64, error) {
	b, _ := json.Marshal(hb) // plain struct: cannot fail
	if rev == 0 {
		return p.nodes.Create(ctx, heartbeatKey(nodeTok), b)
	}
	return p.nodes.Update(ctx, heartbeatKey(nodeTok), b, rev)
}

// takeNode makes this process the node's live incarnation. A heartbeat
// of another incarnation that is not dead is waited on: if it changes
// (renewed) within DeadAfter, another process is alive (ErrNodeInUse);
// if it stays unchanged for DeadAfter, or the store's own clock says it
// is older than that already, it is an earlier process's and is taken.
func (p *Presence) takeNode(ctx context.Context) error {
	inc := newIncarnation()
	var watched uint64
	var since time.Time
	for {
		if err := ctx.Err(); err != nil {
			return p.l.unreachable("node heartbeat", err)
		}
		hb, written, err := p.readHeartbeat(ctx, p.nodeTok)
		if err != nil {
			return err
		}
		if !hb.Dead {
			switch {
			case watched != 0 && hb.rev != watched:
				return fmt.Errorf("%w: %q (its heartbeat was renewed while this one waited; give each node its own [cluster] node)", ErrNodeInUse, p.node)
			case watched == 0:
				watched, since = hb.rev, time.Now()
			}
			if time.Since(written) <= p.cfg.DeadAfter && time.Since(since) < p.cfg.DeadAfter {
				select {
				case <-ctx.Done():
				case <-time.After(p.cfg.Heartbeat / 2):
				}
				continue
			}
		}
		rev, err := p.writeHeartbeat(ctx, p.nodeTok, heartbeat{Inc: inc}, hb.rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // written meanwhile: by a twin, or a purger; look again
		}
		if err != nil {
			return p.l.unreachable("node heartbeat", err)
		}
		p.mu.Lock()
		p.inc, p.hb = inc, heartbeat{Inc: inc, rev: rev}
		p.mu.Unlock()
		return nil
	}
}

// Run keeps this node alive in the cluster and the roster tidy until ctx
// ends (returning ctx.Err()) or the Log is closed (ErrClosed): it renews
// the heartbeat every Heartbeat, watches the other nodes' heartbeats and
// purges the members of nodes dead for DeadAfter, retries releases that
// failed while NATS was unreachable, and claims this node's members again
// when it was counted dead. It returns ErrNodeInUse when another process
// took this node's name (this process must stop). Run it in one
// goroutine, from OpenPresence on; it starts one more, which it ends
// before returning.
func (p *Presence) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	watchErr := make(chan error, 1)
	wg.Go(func() {
		watchErr <- p.l.follow(ctx, p.nodes.Bucket(), []string{"h.>"}, nil, p.sawHeartbeat)
	})
	defer wg.Wait()
	t := time.NewTicker(p.cfg.Heartbeat)
	defer t.Stop()
	reclaim := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-watchErr:
			return err
		case <-t.C:
		}
		if p.l.usable() != nil {
			continue
		}
		cctx, ccancel := context.WithTimeout(ctx, p.l.cfg.PublishTimeout)
		purged, err := p.renew(cctx)
		switch {
		case errors.Is(err, ErrNodeInUse):
			ccancel()
			p.l.log.Error("cluster: another process took this node's name; stopping", "node", p.node)
			return err
		case err != nil:
			p.l.log.Warn("cluster: renewing the node heartbeat failed", "node", p.node, "err", err)
		}
		reclaim = reclaim || purged
		if reclaim && err == nil {
			reclaim = !p.reclaim(cctx)
		}
		p.retryPending(cctx)
		ccancel()
		// A purge of a big node takes seconds (a few thousand members
		// a second): it gets its own bound.
		sctx, scancel := context.WithTimeout(ctx, purgeTimeout)
		p.sweep(sctx)
		scancel()
	}
}

// renew renews the heartbeat. It reports true when the node had been
// counted dead (its key marked or gone): it then took a new incarnation,
// and its members must be claimed again.
func (p *Presence) renew(ctx context.Context) (purged bool, err error) {
	p.mu.Lock()
	hb := p.hb
	p.mu.Unlock()
	rev, err := p.writeHeartbeat(ctx, p.nodeTok, heartbeat{Inc: hb.Inc}, hb.rev)
	if err == nil {
		p.setHeartbeat(hb.Inc, rev)
		return false, nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, p.l.unreachable("node heartbeat", err)
	}
	cur, _, err := p.readHeartbeat(ctx, p.nodeTok)
	if err != nil {
		return false, err
	}
	switch {
	case !cur.Dead && cur.Inc == hb.Inc:
		p.setHeartbeat(hb.Inc, cur.rev) // an earlier renewal's answer was lost
		return false, nil
	case !cur.Dead:
		return false, fmt.Errorf("%w: %q", ErrNodeInUse, p.node)
	}
	inc := newIncarnation()
	rev, err = p.writeHeartbeat(ctx, p.nodeTok, heartbeat{Inc: inc}, cur.rev)
	if err != nil {
		return false, p.l.unreachable("node heartbeat", err)
	}
	p.l.log.Warn("cluster: this node was counted dead (cut off from NATS); claiming its members again", "node", p.node)
	p.mu.Lock()
	p.inc = inc
	p.hb = heartbeat{Inc: inc, rev: rev}
	p.mu.Unlock()
	return true, nil
}

func (p *Presence) setHeartbeat(inc string, rev uint64) {
	p.mu.Lock()
	if p.inc == inc {
		p.hb.rev = rev
	}
	p.mu.Unlock()
}

// reclaim claims every member of this node again under its new
// incarnation. A member whose name was taken meanwhile is dropped and
// reported (OnLost). It reports false when NATS failed it (Run retries).
func (p *Presence) reclaim(ctx context.Context) bool {
	p.mu.Lock()
	ms := make([]member, 0, len(p.mine))
	hs := make([]*held, 0, len(p.mine))
	for m, h := range p.mine {
		ms = append(ms, m)
		hs = append(hs, h)
	}
	p.mu.Unlock()
	for i, m := range ms {
		h := hs[i]
		unlock := p.lockMember(m)
		p.mu.Lock()
		current := p.mine[m] == h
		p.mu.Unlock()
		if !current {
			unlock()
			continue // released or claimed again meanwhile
		}
		err := p.claim(ctx, m.room, h.e, false)
		if errors.Is(err, chat.ErrNameTaken) {
			p.mu.Lock()
			delete(p.mine, m)
			p.mu.Unlock()
		}
		unlock()
		switch {
		case err == nil:
		case errors.Is(err, chat.ErrNameTaken):
			p.stats.membersLost.Add(1)
			p.l.log.Warn("cluster: a member's name was taken while this node was counted dead", "room", m.room, "session", m.session, "name", h.e.Name)
			if p.cfg.OnLost != nil {
				p.cfg.OnLost(m.room, m.session)
			}
		default:
			return false
		}
	}
	// What a purge of the old incarnation left (it may have been cut
	// short) goes now.
	inc := p.incarnation()
	_, err := p.purgeNode(ctx, p.nodeTok, func(i string) bool { return i != inc })
	return err == nil
}

// sawHeartbeat records a heartbeat change (Run's watch).
func (p *Presence) sawHeartbeat(c change) error {
	nodeTok := strings.TrimPrefix(c.Key, "h.")
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if nodeTok == p.nodeTok {
		p.watchOK = now
		return nil
	}
	if c.Deleted {
		delete(p.seen, nodeTok)
		return nil
	}
	var hb heartbeat
	if json.Unmarshal(c.Value, &hb) != nil || hb.Inc == "" {
		hb = heartbeat{Dead: true}
	}
	hb.rev = c.Revision
	p.seen[nodeTok] = &nodeSeen{hb: hb, rev: c.Revision, since: now}
	return nil
}

// sweep purges the nodes whose heartbeat has not changed for DeadAfter,
// provided this node's own heartbeat came back through the watch lately
// (else this node is the one cut off, and its view is stale).
func (p *Presence) sweep(ctx context.Context) {
	p.mu.Lock()
	if time.Since(p.watchOK) > 3*p.cfg.Heartbeat {
		p.mu.Unlock()
		return
	}
	var dead []nodeSeen
	var toks []string
	for tok, s := range p.seen {
		if time.Since(s.since) > p.cfg.DeadAfter {
			dead = append(dead, *s)
			toks = append(toks, tok)
		}
	}
	p.mu.Unlock()
	for i, s := range dead {
		if err := p.purgeDead(ctx, toks[i], s.hb); err != nil {
			p.l.log.Warn("cluster: purging a dead node's members failed; retrying", "node", toks[i], "err", err)
		}
	}
}

// purgeDead purges node nodeTok's incarnation hb, which stopped renewing.
func (p *Presence) purgeDead(ctx context.Context, nodeTok string, hb heartbeat) error {
	// Mark it dead, revision-checked: if the node renewed meanwhile, or
	// another survivor marked it first, leave it (the marker's own
	// staleness brings the next round).
	rev, err := p.writeHeartbeat(ctx, nodeTok, heartbeat{Inc: hb.Inc, Dead: true}, hb.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	if err != nil {
		return p.l.unreachable("node heartbeat", err)
	}
	node, _ := untok(nodeTok)
	p.l.log.Warn("cluster: a node stopped renewing its heartbeat; removing its members", "node", node, "after", p.cfg.DeadAfter)
	n, err := p.purgeNode(ctx, nodeTok, func(inc string) bool { return inc == hb.Inc || hb.Inc == "" })
	p.stats.membersPurged.Add(uint64(n))
	if err != nil {
		return err
	}
	p.stats.nodesPurged.Add(1)
	err = p.nodes.Delete(ctx, heartbeatKey(nodeTok), jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return p.l.unreachable("node heartbeat", err)
	}
	return nil
}

// purgeNode removes node nodeTok's members whose incarnation match says
// is gone, with their name keys, each with a revision check, and returns
// how many entries it removed.
func (p *Presence) purgeNode(ctx context.Context, nodeTok string, match func(inc string) bool) (int, error) {
	type entry struct {
		key string
		rev uint64
		v   rosterValue
		ok  bool
	}
	var todo []entry
	err := p.l.scan(ctx, p.roster.Bucket(), []string{"r." + nodeTok + ".>"}, func(c change) error {
		var v rosterValue
		ok := json.Unmarshal(c.Value, &v) == nil
		if !ok || match(v.Inc) {
			todo = append(todo, entry{c.Key, c.Revision, v, ok})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// A few requests in flight at once: a node's members are purged in
	// seconds, not one round trip after the other.
	work := make(chan entry)
	errs := make(chan error, purgeWorkers)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range purgeWorkers {
		wg.Go(func() {
			for e := range work {
				if err := p.purgeEntry(ctx, e.key, e.rev, e.v, e.ok); err != nil {
					errs <- err
					for range work { // drain: the others stop too
					}
					return
				}
				done.Add(1)
			}
		})
	}
	for _, e := range todo {
		work <- e
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return int(done.Load()), err
	default:
		return int(done.Load()), nil
	}
}

// purgeTimeout bounds one purge (a purge cut short is done again, from
// where it stopped, DeadAfter later).
const purgeTimeout = 2 * time.Minute

// purgeWorkers is how many removals purgeNode has in flight.
const purgeWorkers = 8

// purgeEntry removes one member's name keys and entry, revision-checked.
func (p *Presence) purgeEntry(ctx context.Context, key string, rev uint64, v rosterValue, ok bool) error {
	_, room, _, err := parseRosterKey(key)
	if err == nil && ok {
		for i, k := range v.Keys {
			if i >= len(v.Revs) {
				break
			}
			err := p.roster.Purge(ctx, nameKey(room, k), jetstream.LastRevision(v.Revs[i]), p.l.purgeTTL())
			if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return p.l.unreachable("purge", err)
			}
		}
	}
	err = p.roster.Purge(ctx, key, jetstream.LastRevision(rev), p.l.purgeTTL())
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return p.l.unreachable("purge", err)
	}
	return nil
}

// Close takes this node out of the cluster's roster at once, for a clean
// shutdown: it removes every member of this node and its name keys, then
// its heartbeat, so that the other nodes see them leave now rather than
// DeadAfter later. Call it after Run has returned (else Run writes the
// heartbeat again) and after the last Claim; later Releases do nothing.
// On an error the other nodes purge what is left when the heartbeat goes
// stale.
func (p *Presence) Close(ctx context.Context) error {
	p.mu.Lock()
	hb := p.hb
	p.mine = make(map[member]*held)
	p.pending = make(map[member]*held)
	p.mu.Unlock()
	if err := p.ready("presence close"); err != nil {
		return err
	}
	if _, err := p.purgeNode(ctx, p.nodeTok, func(string) bool { return true }); err != nil {
		return err
	}
	err := p.nodes.Delete(ctx, heartbeatKey(p.nodeTok), jetstream.LastRevision(hb.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return p.l.unreachable("presence close", err)
	}
	return nil
}
