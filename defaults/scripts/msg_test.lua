-- msg_test.lua: `moonchat script test` runs this (make test too).

test("/msg sends a direct message to both sides, not to the room", function()
  local t = chat.testing.new{}
  local alice, bob = t:join("alice"), t:join("bob", {room = "dev"})
  local carol = t:join("carol")
  alice:say("/msg Bob see you at 5  ")
  t:expect_direct(alice, "bob", "see you at 5")
  t:expect_received(bob, "[dm] alice: see you at 5")
  t:expect_received(alice, "[dm to bob] alice: see you at 5")
  t:expect_not_received(carol, "[dm] alice: see you at 5")
  t:expect_eq(#t:history("lobby"), 0, "stored in the room")
end)

test("usage and an unknown recipient", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/msg bob")
  t:expect_refused(alice, "usage: /msg NICK text")
  alice:say("/msg nobody hi")
  t:expect_refused(alice, "no such user: nobody")
end)

test("[scripts.msg] guests = false refuses guests, not accounts", function()
  local t = chat.testing.new{options = {msg = {guests = false}}}
  local guest = t:join("guest")
  local alice = t:join("alice", {id = "acc-a"})
  guest:say("/msg alice hi")
  t:expect_refused(guest, "guests may not send direct messages here")
  t:expect_no_direct(guest, "alice", "hi")
  alice:say("/msg guest hello")
  t:expect_direct(alice, "guest", "hello")
end)

test("a direct message's text is never a command", function()
  local t = chat.testing.new{scripts = {"msg.lua", "nick.lua"}}
  local alice, bob = t:join("alice"), t:join("bob")
  alice:say("/msg bob /nick mallory")
  t:expect_direct(alice, "bob", "/nick mallory")
  t:expect_eq(alice.name, "alice")
end)
