package chat

import (
	"slices"
	"strconv"
	"strings"
)

// presence is what the room tells its members about who is in it: the
// presence delta of the current outbox, and the coalescing of join/leave
// announcements in big rooms (Config.AnnounceBatchMembers,
// Config.AnnounceInterval).
//
// Invariants (besides presenceDelta's):
//   - owned by the room goroutine, except that announceTimer's callback
//     only enqueues an opAnnounce (it never touches room state);
//   - held is set while join/leave announcements are being coalesced: the
//     pending delta then outlives flushes and is sent, with one notice per
//     kind, when the held announcements are released (releaseHeld);
//   - announceArmed is set from arming announceTimer until its opAnnounce
//     is processed, so held notices go out at most once per interval;
//   - announceTimer is nil until first needed and stopped when the room
//     goroutine returns.
type presence struct {
	delta         presenceDelta
	held          bool
	announceArmed bool
	announceTimer Timer // from Config.Clock
}

// presenceDelta is the presence change of the current outbox: who joined
// and who left since the last delta was encoded (net: a name that joined
// and left again within it is in neither list). Members who were already
// in the room get only this small event instead of the whole list.
//
// Invariant: B − left + joined = the room's member names now, where B is
// the member names when the delta began (every change is recorded, with
// or without JSON members). A newcomer's full list is B plus itself
// (presenceBase), so the delta it receives with everyone else brings it
// to the same state: clients apply "left" first (remove if present), then
// "joined" (add if absent), and both operations are idempotent.
//
// Coalescing (presence.held) only makes a delta last longer: it begins
// when the room starts holding (the delta before it is closed first, so B
// is the names just before the first held change) and is sent when the
// held announcements are released, not at every flush. The invariant, and
// so the newcomer's argument, is unchanged: a newcomer during the hold
// gets B plus itself and the released delta brings it to the room's
// state. A member who asks for the full list during the hold gets the
// current names N = B − left + joined; applying the delta to N gives N
// again, since every name in left that is in N is also in joined (applied
// after), and every name in joined is in N. The notices are written from
// the same lists (net, left before joined), so plain clients read the
// same story: a name that joined and left within the hold is in neither.
type presenceDelta struct {
	at     int // index in outbox.json of the reserved event, or -1
	joined []string
	left   []string
}

// holdAnnouncements runs for a join or leave that has just changed the
// members, before the change is recorded in the presence delta. It
// reports whether the change's announcement is held: the room has more
// than AnnounceBatchMembers members and coalescing is on. Starting a hold
// closes the delta so far (its announcements are already in the outbox)
// and arms the timer; a room that shrank to the threshold sends what it
// held first, so that announcements keep their order.
func (r *room) holdAnnouncements() bool {
	cfg := &r.srv.cfg
	big := cfg.AnnounceInterval > 0 && r.roster.count() > cfg.AnnounceBatchMembers
	switch {
	case big && !r.presence.held:
		r.closePresence()
		r.presence.held = true
		r.armAnnounce()
	case !big && r.presence.held:
		r.releaseHeld()
	}
	return big
}

// armAnnounce makes the room get an opAnnounce after AnnounceInterval,
// unless one is already due. The timer's callback only enqueues (it never
// touches room state) and finds the room stopped once run has returned.
func (r *room) armAnnounce() {
	p := &r.presence
	if p.announceArmed {
		return
	}
	p.announceArmed = true
	d := r.srv.cfg.AnnounceInterval
	if p.announceTimer == nil {
		p.announceTimer = r.srv.cfg.Clock.AfterFunc(d, func() { r.enqueue(op{kind: opAnnounce}) })
	} else {
		p.announceTimer.Reset(d)
	}
}

// releaseHeld puts the held announcements in the outbox: the presence
// delta (reserved here, encoded at flush) and one notice per kind, left
// before joined like the delta is applied. A hold that netted out to no
// change sends nothing.
func (r *room) releaseHeld() {
	if !r.presence.held {
		return
	}
	r.presence.held = false
	d := &r.presence.delta
	r.outPresence()
	if len(d.left) > 0 {
		r.outSystem(announceText(d.left, "left"))
	}
	if len(d.joined) > 0 {
		r.outSystem(announceText(d.joined, "joined"))
	}
}

// announceShown is how many names a coalesced notice lists before
// "and N others".
const announceShown = 3

// announceText is a coalesced notice: "alice joined", "alice and bob
// joined", "alice, bob and carol left", "alice, bob, carol and 12 others
// joined".
func announceText(names []string, verb string) string {
	var b strings.Builder
	shown := min(len(names), announceShown)
	for i, n := range names[:shown] {
		switch {
		case i == 0:
		case i == shown-1 && shown == len(names):
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	if rest := len(names) - shown; rest == 1 {
		b.WriteString(" and 1 other")
	} else if rest > 1 {
		b.WriteString(" and " + strconv.Itoa(rest) + " others")
	}
	b.WriteString(" " + verb)
	return b.String()
}

// presenceJoined records that name joined.
func (r *room) presenceJoined(name string) {
	d := &r.presence.delta
	d.joined = append(d.joined, name)
}

// presenceLeft records that name left. A name that joined within the same
// delta is dropped from it instead (the left list is applied first, so
// recording both would leave the name listed).
func (r *room) presenceLeft(name string) {
	d := &r.presence.delta
	if i := slices.Index(d.joined, name); i >= 0 {
		d.joined = slices.Delete(d.joined, i, i+1)
		return
	}
	d.left = append(d.left, name)
}

// presenceBase returns the full list for a newcomer called self: the
// members when the pending delta began (this node's in join order, then
// the other nodes', those who left since at the end), then self. The
// delta that follows in the outbox turns it into the current list.
func (r *room) presenceBase(self string) []string {
	d := &r.presence.delta
	ro := &r.roster
	names := make([]string, 0, ro.count()+len(d.left))
	// In a big room a held delta can list thousands of names: look them
	// up in a set rather than scan the list for every member.
	inDelta := func(n string) bool { return slices.Contains(d.joined, n) }
	if len(d.joined) > 16 {
		set := make(map[string]struct{}, len(d.joined))
		for _, n := range d.joined {
			set[n] = struct{}{}
		}
		inDelta = func(n string) bool { _, ok := set[n]; return ok }
	}
	for _, m := range ro.members {
		n := m.currentName()
		if n != self && !inDelta(n) {
			names = append(names, n)
		}
	}
	for _, rm := range ro.remote.order {
		if rm != nil && rm.e.Name != self && !inDelta(rm.e.Name) {
			names = append(names, rm.e.Name)
		}
	}
	for _, n := range d.left {
		if n != self {
			names = append(names, n)
		}
	}
	return append(names, self)
}

// outPresence reserves the outbox's place for the presence delta (JSON
// only). Only one per outbox: its content is written when the outbox is
// flushed (or a rename closes it), so a burst of joins or leaves costs one
// small event, not one per change.
func (r *room) outPresence() {
	d := &r.presence.delta
	if len(r.roster.json) == 0 || d.at >= 0 {
		return
	}
	d.at = r.out.reserveJSON()
}

// closePresence encodes the reserved delta (an empty one is dropped) and
// starts a new one.
func (r *room) closePresence() {
	d := &r.presence.delta
	if d.at >= 0 {
		r.out.fillJSONPresence(d.at, r.name, d.joined, d.left, r.presenceAccounts(d.joined))
		d.at = -1
	}
	clear(d.joined)
	clear(d.left)
	d.joined, d.left = d.joined[:0], d.left[:0]
}
