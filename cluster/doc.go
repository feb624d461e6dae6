// Package cluster is moonchat's room log on NATS JetStream (issue 15): the
// layer that lets several moonchat nodes share rooms. core/chat does not
// import it; cmd/moonchat wires it in when [cluster] nats_url is set.
//
// One JetStream stream (Config.Stream, file storage, Config.Replicas)
// holds every room's records: a room's on subject <stream>.room.<token>, a
// conversation's (chat.ConversationKey) on <stream>.dm.<token>, the token
// being the key in unpadded base64url (subject.go). A record is one
// accepted batch of messages (Publish) or one redaction (Redact), in a
// versioned, checksummed encoding (codec.go).
//
// Ids stay per room and contiguous, as in single-node mode: a batch's
// first id is the room's last id + 1. Any node may publish for any room;
// the stream enforces one order per room with optimistic concurrency
// (Nats-Expected-Last-Subject-Sequence), and a publisher that lost the
// race renumbers and retries. Publish returns once JetStream acknowledged
// the record; it delivers nothing itself. Every node runs Consume, an
// ordered consumer from the stream sequence it last applied, and applies
// each record (its store replica, then its local members): the stream's
// order is the room's order on every node. ConsumeBatch is Consume
// handing over the records already received (at most BatchMaxEntries,
// BatchMaxBytes), so that a node behind the stream applies them in one
// store transaction rather than one each.
//
// A room's ids also survive MaxAge dropping all its records: the bucket
// <stream>_ids (ids.go, opened by Open) holds a bound of every id a
// room's records carry, raised in blocks of 1000 before a record passes
// it, and a room the stream no longer knows goes on after the higher of
// that bound and Config.Floor (Log.Last says which id that is).
// Stats.Reservations counts the bound's writes.
//
// docs/cluster.md says what an acknowledged record survives for each
// setting and what the ids are.
//
// # Cluster-wide state
//
// Besides the log, a node shares state with the others through JetStream
// key-value buckets and one more stream, all named after Config.Stream
// and created with Config.Replicas, opened on the Log's connection:
//
//   - Log.OpenState → *State (state.go, audit.go): chat.SharedState on
//     the bucket <stream>_state (bans and mutes, room settings, name
//     owners, ignore lists; one key each) and the audit log on the stream
//     <stream>_audit. State.Watch hands every stored change, this node's
//     included, to a chat.SharedApplier, in the bucket's order.
//     DeleteRestriction is revision-checked: of several nodes deleting one
//     restriction, one is told true. State.DeleteExpired
//     (chat.ExpiryDeleter, an expiry's sweep) is too, and removes the
//     restriction only while the stored one is the expiring one (its
//     Created, to the millisecond): a ban another node made in its place
//     stays. State.Stats counts for /metrics.
//   - Log.OpenPresence → *Presence (presence.go, alive.go, kick.go,
//     direct.go, presence_watch.go): chat.Presence on the bucket <stream>_roster (one
//     entry per member, ~100 bytes, and one key per name key held in a
//     room), with node heartbeats on <stream>_nodes. Presence.Run keeps
//     the node alive and purges dead nodes; Presence.Watch hands the
//     other nodes' members to a chat.PresenceApplier; Presence.ServeKicks
//     answers Presence.Kick from the other nodes (a member that left is
//     chat.ErrNoSuchUser on the asking node too); Presence.RelayDirect
//     and ServeDirects carry guests' direct messages between nodes
//     (chat.DirectRelay: core NATS requests, never stored); Presence.Close takes
//     the node's members out at a clean shutdown.
//   - Log.OpenScriptKV → *ScriptKV (scriptkv.go): scripting.KV, the Lua
//     chat.kv storage, on the bucket <stream>_kv.
//   - Log.OpenLease → *Lease (lease.go): one cluster-wide lease (the
//     scripts' timers run where Lease.Held), a key of <stream>_nodes.
//
// A node is alive while its heartbeat key (h.<node>) keeps changing: it
// is renewed every PresenceConfig.Heartbeat (2 s). A node whose heartbeat
// has not changed for DeadAfter (10 s) is dead: the first survivor to
// notice (one whose own heartbeat keeps coming back, so a node cut off
// from NATS does not count the others dead) removes its members and name
// keys, and every node's Watch tells its server they left. A dead node
// that comes back (it was only cut off) claims its members again; those
// whose names were taken meanwhile are reported (PresenceConfig.OnLost).
// Two live processes with one node name cannot both run: the second
// refuses to start (ErrNodeInUse).
//
// Keys come and go in every bucket but <stream>_nodes: a removal is a
// purge whose marker expires after 15 minutes (per-message TTLs: NATS
// server 2.11 or later), so that members who left and keys removed do not
// pile up; a watcher cut off for longer than half that loads its bucket
// afresh and hands over what went as removals.
//
// Every call that needs NATS and cannot reach it fails at once with an
// error wrapping both ErrUnavailable and chat.ErrUnavailable (fail
// closed: a join is refused, not let through unclaimed). Each long-running
// method (State.Watch, Presence.Run, Presence.Watch, Lease.Run) runs in
// the caller's goroutine until its context ends, survives NATS outages,
// and starts no goroutine it does not end before returning.
//
// # Counters
//
// For /metrics (cmd/moonchat exports them), each part has a Stats method
// returning plain numbers since it was opened, safe to call at any time:
// Log.Stats (Stats: records published, conflicts, retries, stalls,
// applied sequence), State.Stats (StateStats: changes skipped as
// undecodable, expiries left because the restriction was replaced) and
// Presence.Stats (PresenceStats: releases pending, dead nodes and their
// members purged by this node, members lost while it was counted dead,
// claims refused as unavailable or taken).
package cluster
