// Package chattest holds the test doubles of the chat server's seams and a
// harness that runs a real chat.Server for tests of the packages around
// it (core/chat's external tests, core/chat/web, scripting), so that each
// double exists once:
//
//   - History: an in-memory chat.History that keeps the seam's promises
//     (ids grow per room, After reports gaps), with retention (PruneTo)
//     and fault injection (HoldAfter, BlockAppends, SlowAppends,
//     FailNameOwners, Blocked); it keeps name owners (chat.NameOwners),
//     so a second server given the same History sees them as after a
//     restart, and lists accounts' direct conversations
//     (chat.ConversationLister); ListingHistory adds chat.RoomLister;
//   - Broker: an in-memory cluster log (chat.Broker) shared by several
//     servers, each a Node with its own replica History and a consumer
//     goroutine that applies every record and then calls Deliver or
//     Redacted, as cmd/moonchat's does; a Node can be disconnected, made
//     to fail its publishes, paused (it lags) or held between applying a
//     record and delivering it; StartNode runs a server as one;
//   - Shared: an in-memory chat.SharedState shared by several servers,
//     each handed every stored change by a Watcher goroutine (the state
//     when it starts, then every change in order; Pause, Resume, Close),
//     with Synced for a test to wait until every node has applied
//     everything and Fail to make writes or reads fail; StartShared runs
//     a server as one of them;
//   - PresenceHub: an in-memory cluster-wide roster (chat.Presence)
//     shared by several servers, each a PresenceNode, with a watcher
//     goroutine per node handing the others' entries to its server in
//     order (Settle waits for them), kicks routed to the node's KickBy,
//     and a switch that makes it unavailable; StartPresence runs a
//     server as one node;
//   - Hooks: a scripted chat.Hooks that records joins, leaves and renames;
//   - Clock: a chat.Clock that moves only when the test advances it, for
//     tests that must show that something does not happen yet (Pending
//     counts armed timers);
//   - Start: a chat.Server behind an httptest listener, bound to its hooks
//     and shut down when the test ends, with Limits for the settings
//     chat.New requires;
//   - Client: a third-party (gorilla/websocket) user client that reads
//     and checks frames (plain text and moonchat.v1 events);
//   - Eventually: polls a condition for what a test must see happen.
//
// core/chat's in-package tests (package chat) cannot import this package,
// which imports core/chat; only the ones that read internals stay there,
// with the few doubles they need in core/chat/doubles_test.go. The rest
// are external tests (package chat_test) and use this package, with what
// they need of the internals lent by core/chat/export_test.go.
package chattest
