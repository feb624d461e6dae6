-- quit_test.lua: `moonchat script test` runs this (make test too).

test("a bare quit says goodbye and closes, never reaching the room as chat", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  local bob = t:join("bob")
  alice:say("  QUIT ")
  t:expect_broadcast("lobby", "* alice has quit")
  t:expect_kick(alice, "goodbye")
  t:expect_not_stored("lobby", "alice:   QUIT ")
  t:expect_eq(alice.connected, false, "alice connected")
  t:expect_received(bob, "* alice left")
end)

test("/quit with a message", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/quit see you")
  t:expect_broadcast("lobby", "* alice has quit (see you)")
  t:expect_kick(alice, "goodbye")
end)

test("quit inside a sentence, as an action or a direct message is chat", function()
  local t = chat.testing.new{scripts = {"quit.lua", "me.lua", "msg.lua"}}
  local alice, bob = t:join("alice"), t:join("bob")
  alice:say("I quit smoking")
  t:expect_broadcast("lobby", "alice: I quit smoking")
  alice:say("/me quit")
  t:expect_broadcast("lobby", "* alice quit")
  alice:say("/msg bob quit")
  t:expect_direct(alice, "bob", "quit")
  t:expect_no_kick(alice)
end)
