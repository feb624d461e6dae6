// Package chat is moonchat's chat server: rooms, members, the two wire
// formats (plain "NICK: TEXT" lines and moonchat.v1 JSON events), fan-out,
// flood control and the HTTP endpoints (chat page, /api/history, /healthz,
// /metrics). It drives WebSocket connections through package core/ws and
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
// Joins, leaves and renames are processed on the same goroutine, between
// batches, so a newcomer's replay ends exactly where its live messages
// begin. Host methods (the scripts' API) never wait for a room goroutine:
// they take a short lock or enqueue an operation, so a hook may call them.
package chat
