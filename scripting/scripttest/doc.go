// Package scripttest runs moonchat's Lua script tests (*_test.lua) and
// dry runs of scripts over stored history, without a chat server.
//
// A Server is a fake chat server around a real scripting.Engine: it is
// the engine's chat.Host (with chat.Ignorer and chat.Directer), keeps
// members, rooms, stored messages, bans, mutes, room settings and the
// audit log in memory, and records everything the scripts did — lines
// the rooms saw, notices to one member, kicks, renames, refusals, kv
// writes, errors — as Events. Its clock is fake (Clock): chat.every
// timers fire only when a test advances it. The chat server's promise
// that Host methods never call the hooks synchronously holds here too:
// what a Host method starts (an action, a direct message, a rename's or
// a kick's hook) is queued and run once the engine call returns.
//
// A *_test.lua file drives a Server from Lua (lua.go): it gets
// chat.testing.new{scripts = {...}, options = {...}}, joins users, sends
// messages and commands, advances the clock and asserts with
// t:expect_* methods, each failure reported at the file:line of the
// failing call. Run (runner.go) runs test files and reports in the style
// of go test; `moonchat script test` is its command. Try (try.go)
// replays stored messages through scripts for `moonchat script try`.
//
// docs/lua.md, "Developing scripts", is the user's guide.
package scripttest
