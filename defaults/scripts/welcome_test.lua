-- welcome_test.lua: `moonchat script test` runs this (make test too).

test("a newcomer is greeted, alone", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  local bob = t:join("bob", {room = "dev"})
  t:expect_send(alice, "welcome to lobby! /help lists the commands; type quit to leave")
  t:expect_send(bob, "welcome to dev! /help lists the commands; type quit to leave")
  -- a notice to one member, never a line of the room
  t:expect_no_broadcast("lobby", "* welcome to lobby! /help lists the commands; type quit to leave")
end)
