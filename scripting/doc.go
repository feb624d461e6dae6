// Package scripting runs moonchat's Lua scripts (gopher-lua) and plugs them
// into the chat server as its chat.Hooks.
//
// Every *.lua file at the top of the scripts file system is loaded, in name
// order, into one sandboxed Lua state — but the scripts' tests,
// NAME_test.lua, which package scripttest runs (IsTestScript). Scripts register handlers for the
// join, message, leave and rename events (chat.on), chat commands
// (chat.command) and timers (chat.every), act through the chat.* API,
// which maps onto chat.Host and onto KV for chat.kv, and read their own
// settings (config.toml's [scripts.NAME], Options.ScriptOptions) as the
// read-only table chat.options. Failures of the ordinary course (a member
// who left, a refused name, a store error) are results (nil, err); wrong
// arguments raise. docs/lua.md is the user's guide and reference.
//
// Two more events decide identity rather than act in a room (connect.go):
// "connect" for a WebSocket handshake before the upgrade and "login" for
// POST /api/login. cmd/moonchat calls them through Engine.Connect and
// Engine.Login from HTTP handlers, skipping them when Engine.Handles says
// no script handles the event. They take the same semaphore and time limit
// as the room hooks; anything but a clean decision is a *chat.HookError,
// and the caller refuses (fail closed). A login's password never appears
// in an error or reason the engine returns.
//
// Invariants:
//
//   - One Lua state serves everything, one call at a time: hooks from all
//     rooms, commands, timers and console lines (console.go, `moonchat
//     console`) take the engine's one-slot semaphore. The
//     Lua state is never touched without it (or, while it is being built,
//     by anyone but its builder).
//   - Every chunk of Lua is compiled with its tail calls made ordinary
//     calls (compile, sandbox.go): a tail-call loop overflows the call
//     stack at once instead of running to its time limit and leaving
//     gopher-lua a traceback of millions of lines to build after it.
//   - Every call into Lua runs under a time limit (Options.HookTimeout)
//     enforced by gopher-lua between instructions and, for the library
//     calls that could run on (pattern matching, gsub, table.concat), inside
//     them (strlib.go); a password hash, which cannot be interrupted, runs
//     on its own goroutine and the call waits for it no longer than the
//     limit (password.go); no single call builds a string over 1 MiB. A call
//     never panics out of the engine: a failed hook or command is returned
//     to the chat server as a *chat.HookError (file:line, reason), which
//     decides — by default the message or join is refused; it is never
//     treated as if it had returned nothing. Failed timers are logged.
//   - Every call also runs under a memory limit (Options.MaxMemory,
//     limits.go): a call that allocates more is stopped like one over its
//     time limit (reason memory), and a state whose scripts keep more fails
//     every call until the engine has loaded the scripts again into a fresh
//     state (Engine.release, which also starts a rebuild only once).
//   - Loading (New, Reload, Check) runs each script's top level under the
//     load time limit and stops at once when its context is cancelled.
//   - Reload builds a complete new state aside and swaps it in only when
//     every script loaded, while holding the semaphore, so a hook call sees
//     either the old scripts or the new ones, never a mix.
//   - Each script has its own global environment and its own copies of the
//     library tables; nothing outside the sandbox (files, processes,
//     environment, other code) is reachable from Lua.
//   - chat.options and the tables in it cannot be written from Lua (see
//     readOnly); they change only when a reload builds a new state.
//   - Timers and the directory watcher take their time from Options.Clock.
//   - In a cluster the timers run on one node at a time: a due tick runs
//     only when Options.TimerGate (the cluster's timer lease, package
//     cluster, wired by cmd/moonchat) says this node holds it; otherwise
//     it is skipped and counted, never run later. Event handlers run on
//     the node where the event happens, whatever the gate says.
//   - The engine never waits for the chat server: it relies on chat.Host
//     methods not waiting for a room's goroutine and not calling Hooks
//     synchronously. Should a Host break that promise, a hook waits at most
//     Options.LockWait for the state and then fails (reason busy).
package scripting
