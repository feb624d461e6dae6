-- me_test.lua: `moonchat script test` runs this (make test too).

test("/me posts an action, stored like a message", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/me waves")
  t:expect_broadcast("lobby", "* alice waves")
  t:expect_stored("lobby", "* alice waves")
end)

test("/me alone is refused with its usage", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  local ok, why = alice:say("/me")
  t:expect_eq(ok, false)
  t:expect_eq(why, "usage: /me ACTION")
  t:expect_eq(#t:history("lobby"), 0, "stored messages")
end)

test("the action goes through the message handlers", function()
  local t = chat.testing.new{scripts = {"me.lua", "wordfilter.lua"}}
  local alice = t:join("alice")
  alice:say("/me says darn")
  t:expect_broadcast("lobby", "* alice says ****")
end)
