-- who_test.lua: `moonchat script test` runs this (make test too).

test("/who lists the room's members in join order", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  t:join("bob")
  t:join("carol", {room = "dev"})
  alice:say("/who")
  t:expect_send(alice, "2 in lobby: alice, bob")
  t:expect_not_stored("lobby", "alice: /who")
end)

test("/who after a member left", function()
  local t = chat.testing.new{}
  local alice, bob = t:join("alice"), t:join("bob")
  bob:leave()
  alice:say("/WHO")
  t:expect_send(alice, "1 in lobby: alice")
end)
