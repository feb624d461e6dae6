// Package chat is moonchat's chat server: rooms, members, the two wire
// formats (plain "NICK: TEXT" lines and moonchat.v1 JSON events), fan-out,
// flood control, direct messages and the HTTP endpoints (chat page,
// /api/session, /api/history, /api/rooms, /api/direct, the admin API,
// /healthz, /metrics). It drives WebSocket connections through package core/ws and
// plugs in scripting and storage through the seams in seams.go.
//
// # Ordering and durability
//
// Every room has exactly one goroutine, its ordering point. Connections'
// event handlers never do room work themselves: they decode a frame, apply
// per-connection limits (size, flood) and enqueue an operation to the room.
// The room goroutine drains everything pending into a batch, runs the
// message hooks, stores the whole batch with one History.Append call, and
// only then encodes the batch once per wire format and hands the same
// encoded buffer to every member. Nothing is broadcast before Append
// returned, so a message any client saw is on disk; and since one goroutine
// decides the order, every member sees a room's messages in the same order.
// While Append waits for the disk, new messages queue up and form the next,
// larger batch: batching grows with load by itself. In big rooms the writes
// themselves are made by the room's sweepers (fanout.go), in the order the
// room goroutine hands batches over, while it stores the next batch.
//
// In cluster mode (Config.Broker; docs/cluster.md) the room goroutine
// publishes the batch to the cluster's log instead of appending it, and
// broadcasts nothing itself: every node, the publisher included, puts a
// batch in its outbox only when its consumer hands it back
// (Server.Deliver), after writing it to the node's replica, so the log's
// order is every room's order on every node (deliver.go). Bans, mutes,
// room settings, the audit log, name owners and ignore lists are then
// kept in the cluster's SharedState (Config.Shared) instead of the
// History: written there first, and every stored change, this node's
// own included, handed back by a watcher to the server's SharedApplier
// methods, which make it take effect on this node's members (shared.go).
// With the cluster's roster (Config.Presence) a room's members are the
// whole cluster's: a join or rename claims its name for the room before
// anyone is told (the room goroutine waits for the claim; a batch's joins
// are claimed together), and the other
// nodes' members, handed in by a watcher (PresenceApplier), reach each
// room as an operation like its own joins and leaves, so that names,
// presence lists and announcements are the room's on every node
// (remote.go).
//
// Joins, leaves and renames are processed on the same goroutine, between
// batches, so a newcomer's replay ends exactly where its live messages
// begin. Host methods (the scripts' API) never wait for a room goroutine:
// they take a short lock or enqueue an operation, so a hook may call them.
//
// # Files
//
// Each file owns its data and states its invariants at the type:
//
//   - seams.go: every interface the chat server expects others to
//     implement (Hooks, History and its optional RoomLister, Host, Clock)
//     and the types they exchange;
//   - server.go: Server, connections' lifecycle (upgrade, OnOpen,
//     OnMessage, OnClose), the room table, Shutdown;
//   - config.go: Config and its checks; clock.go: the real Clock;
//   - room.go: a room's queue and its goroutine, which hands each operation
//     to the part that owns it;
//   - post.go: posting a run of chat messages (message hooks,
//     History.Append, the outbox);
//   - membership.go: the roster (members, names, fan-out lists); join,
//     replay, leave, rename, kick;
//   - presence.go: presence deltas and the coalescing of join/leave
//     announcements in big rooms;
//   - outbox.go: what one room batch sends, encoded once per wire format,
//     and its flush;
//   - fanout.go: big rooms' sweepers, which write the outboxes to members;
//   - paging.go: history paging, shared by history requests,
//     /api/history and the replay;
//   - member.go: one connection (backpressure, writes, slow consumers);
//     flood.go: the per-connection token bucket; names.go: nicknames;
//   - wire.go, wire_json.go: the wire formats (docs/protocol.md);
//   - host.go: Host, the scripts' API; hookfail.go: hook failures;
//   - broker_seams.go: the cluster seam (Broker, LastIDer); deliver.go:
//     cluster mode — publishing instead of Append, and Deliver and
//     Redacted, through which a node's consumer hands back what the
//     cluster's log ordered, and each room's lastDelivered that keeps
//     replay and live apart;
//   - shared_seams.go: the seams of cluster-wide state (SharedState,
//     SharedApplier, Presence, PresenceApplier); shared.go: moderation,
//     name owners and ignore lists in the SharedState, and the
//     SharedApplier methods; remote.go: cluster presence — the other
//     nodes' members (PresenceApplier), kicks routed to their node;
//     remote_roster.go: a room's copy of them; remote_claim.go: this
//     node's members' names claimed for the cluster;
//   - direct_seams.go: the direct-message seam; direct.go: sending and
//     delivering direct messages; direct_store.go: the per-conversation
//     locks, the index of accounts' connections and the in-memory
//     conversations of guests; direct_read.go: conversations, their
//     history requests and /api/direct; direct_wire.go: their events;
//   - http.go: /api/history, /api/rooms, /healthz, /metrics, Config.Routes
//     and the Host check; session.go: /api/session; admin.go: the admin
//     API and AdminHandler; page.go: the chat page; metrics.go: the
//     /metrics series; errors.go: the exported errors.
package chat
