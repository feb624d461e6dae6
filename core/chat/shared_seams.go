package chat

import (
	"context"
	"errors"
	"time"
)

// This file holds the seams of cluster-wide state (issue 15,
// docs/cluster.md): what a node shares with the other nodes of its
// cluster besides the log of messages (Broker). Package cluster implements
// both on NATS JetStream key-value buckets; cmd/moonchat wires them and
// runs the watchers that hand other nodes' changes in. core/chat imports
// neither.
//
//   - SharedState (Config.Shared) replaces the History's ModerationStore,
//     NameOwners and IgnoreStore: bans, mutes, room settings, the audit
//     log, who owns which name and accounts' ignore lists are stored once
//     for the cluster. Every change a node makes is written there first
//     (as on a single node: the write returns once it is durable, an error
//     refuses the change); the watcher then hands every stored change,
//     this node's own included, to the server's SharedApplier methods,
//     which are idempotent.
//   - Presence (Config.Presence) is the cluster-wide roster: a member
//     joining or renaming claims its name in the room for the cluster
//     before anyone sees it, so that a name (and its look-alikes) is held
//     by one member per room across every node; the watcher hands other
//     nodes' members in (PresenceApplier), so that presence lists, /who
//     (Host.Users) and join and leave announcements show the whole room.

// SharedState is the cluster's store of moderation, name ownership and
// ignore lists (Config.Shared). Implementations must be safe for
// concurrent use; every write returns once the change is durable in the
// cluster. DeleteRestriction reports true to exactly one caller when
// several nodes delete the same restriction at once (an expiry is
// audited once for the cluster). Values read back (and handed to a
// SharedApplier) are the values written, times at least to the
// millisecond.
//
// The watcher that hands its changes to a SharedApplier starts with the
// state as it is (deleted keys included, as removals: something removed
// between New's load and the watch's start must be removed on this node
// too), then hands every later change in the order stored, none
// skipped; after a reconnect it may hand some again.
type SharedState interface {
	ModerationStore
	NameOwners
	IgnoreStore
}

// SharedApplier takes in the changes stored in the cluster's SharedState
// by any node, this one included (*Server implements it; a watcher calls
// it in the order the changes were stored, from one goroutine). Each
// method is idempotent: a change the server already holds changes
// nothing and tells nobody. Nothing handed in is audited: the node that
// made the change did.
type SharedApplier interface {
	// RestrictionStored: r was stored (made or replaced). It is in force
	// on this node (expiry timer armed): a ban kicks this node's members
	// it matches, as Restrict does on the node that made it; a mute
	// refuses their posts from now on.
	RestrictionStored(r Restriction)
	// RestrictionRemoved: the restriction of kind in room on t was
	// lifted or expired; it is no longer in force on this node.
	RestrictionRemoved(kind RestrictionKind, room string, t Target)
	// RoomSettingsStored: room's settings are now rs (the zero value:
	// none). This node's members of room are told of a new topic or slow
	// mode as on the node that made the change (a cleared topic without
	// who cleared it); on that node, nobody twice.
	RoomSettingsStored(room string, rs RoomSettings)
	// NameOwnerStored: account id now owns name (and no longer the name
	// it owned before; "": none).
	NameOwnerStored(id, name string)
	// IgnoreListStored: account's ignore list (the ignored account ids)
	// is now ignored (empty: none), for its connections on this node.
	IgnoreListStored(account string, ignored []string)
}

// PresenceEntry is one member of a room as the cluster's roster holds it.
type PresenceEntry struct {
	// Node is the node the member is connected to (Presence.Node for
	// this node's own members); Session its session id there. Together
	// they name the member in the cluster: session ids are per node.
	Node    string
	Session uint64
	// Name is the member's name in the room; Keys are its name keys (the
	// look-alike forms two names that may not both be used in a room
	// share; computed by the chat server, compared as opaque strings).
	Name string
	Keys []string
	// Account is the account id ("" for a guest); Roles the member's
	// roles.
	Account string
	Roles   []string
	// Joined is when the member joined the room.
	Joined time.Time
}

// Presence is the cluster-wide roster (Config.Presence). Implementations
// must be safe for concurrent use: a room claims the names of a batch of
// joins, and releases those of a batch of leaves, up to 32 at once
// (remote_claim.go), and Host.Rename claims from any goroutine. Each call
// gets a context that ends after 10 s; a claim that has not answered by
// then refuses the join or rename as ErrUnavailable does.
type Presence interface {
	// Node is this node's name, the Node of its own entries.
	Node() string
	// Claim records that this node's member e.Session is in room as
	// e.Name, before anyone is told. It fails with ErrNameTaken when any
	// of e.Keys is held in room by another member (of any node); with
	// ErrUnavailable when the cluster cannot be reached (the join or
	// rename is refused: fail closed). A second Claim of the same
	// session in room replaces the first (a rename, or new roles): its
	// old keys are released once the new ones are held.
	Claim(ctx context.Context, room string, e PresenceEntry) error
	// Release removes this node's member session from room's roster and
	// its names. An entry that could not be released (the cluster
	// unreachable) is released later by the implementation, when the
	// node reconnects, or by the other nodes when this node is gone.
	Release(ctx context.Context, room string, session uint64) error
	// Kick asks node to kick its member session (Server.KickBy there)
	// with reason, in the audit log as by; it returns once node has
	// done it, or an error (unknown node, no answer). The chat server
	// calls it for Host.Kick and the admin API's kick of another node's
	// member (User.Node).
	Kick(ctx context.Context, node string, session uint64, reason, by string) error
}

// PresenceApplier takes in other nodes' members (*Server implements it;
// a watcher calls it from one goroutine, in the roster's order: every
// member first, then each change; never with this node's own entries).
// Both are idempotent, and never wait for a room: the server keeps the
// entries and hands each change to the room's goroutine, if the room has
// one on this node (else a room started later takes them).
type PresenceApplier interface {
	// RemoteJoined: e is in room (a newcomer, a rename or new roles of
	// the same Node and Session).
	RemoteJoined(room string, e PresenceEntry)
	// RemoteLeft: node's member session left room (or node is gone).
	RemoteLeft(room, node string, session uint64)
}

// ErrNameTaken is returned by Presence.Claim when the name, or a
// look-alike of it, is held in the room by another member of the
// cluster.
var ErrNameTaken = errors.New("name in use in this room")
