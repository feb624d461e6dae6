package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/moonchat/moonchat/core/chat"
)

// Watch hands the other nodes' members to a (chat.PresenceApplier):
// every member in the roster first, then each join, rename or new roles
// (RemoteJoined) and each leave or purge of a dead node's members
// (RemoteLeft), in the bucket's order. It never hands over this node's
// own members. It survives NATS outages: resuming after the last change
// handed over, or, after an outage longer than the removal markers last,
// loading the roster afresh and telling a of the members that left
// meanwhile. It runs until ctx ends (returning ctx.Err()) or the Log is
// closed (ErrClosed). Run it in one goroutine.
//
// Its memory is one map entry per remote member (the roster keys it
// handed over, for the afresh load); its work per change is constant.
func (p *Presence) Watch(ctx context.Context, a chat.PresenceApplier) error {
	known := knownKeys{} // roster keys handed over (for a load afresh)
	rl := known.reload(p.l.markers()/2, func(k string) {
		if node, room, session, err := parseRosterKey(k); err == nil {
			a.RemoteLeft(room, node, session)
		}
	})
	own := "r." + p.nodeTok + "."
	return p.l.follow(ctx, p.roster.Bucket(), []string{"r.>"}, rl, func(c change) error {
		if strings.HasPrefix(c.Key, own) {
			return nil
		}
		node, room, session, err := parseRosterKey(c.Key)
		if err != nil {
			p.l.log.Error("cluster: a roster key does not decode; skipped", "key", c.Key)
			return nil
		}
		if c.Deleted {
			known.saw(c)
			a.RemoteLeft(room, node, session)
			return nil
		}
		var v rosterValue
		if err := json.Unmarshal(c.Value, &v); err != nil {
			p.l.log.Error("cluster: a roster entry does not decode; skipped", "key", c.Key, "err", err)
			return nil
		}
		known.saw(c)
		e := chat.PresenceEntry{Node: node, Session: session, Name: v.Name, Keys: v.Keys, Account: v.Account, Roles: v.Roles}
		if v.Joined != 0 {
			e.Joined = time.UnixMilli(v.Joined).UTC()
		}
		a.RemoteJoined(room, e)
		return nil
	})
}
