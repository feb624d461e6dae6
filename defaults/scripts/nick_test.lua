-- nick_test.lua: `moonchat script test` runs this (make test too).

test("/nick renames and the room is told", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/nick alicia")
  t:expect_rename("alice", "alicia")
  t:expect_broadcast("lobby", "* alice is now known as alicia")
  t:expect_eq(alice.name, "alicia")
  t:expect_no_send(alice)
end)

test("a taken name gives another, and says so", function()
  local t = chat.testing.new{}
  t:join("bob")
  local alice = t:join("alice")
  alice:say("/nick bob")
  t:expect_eq(alice.name, "bob-2")
  t:expect_send(alice, "that name is taken or looks like one in use; you are now bob-2")
end)

test("usage, and a name the server refuses", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/nick")
  t:expect_refused(alice, "usage: /nick NAME")
  alice:say("/nick a b")
  t:expect_refused(alice, "usage: /nick NAME")
  local ok, why = alice:say("/nick a:b")
  t:expect_eq(ok, false)
  t:expect(why:find("^cannot change your name: invalid name") ~= nil, "reason: " .. why)
  t:expect_eq(alice.name, "alice")
end)
