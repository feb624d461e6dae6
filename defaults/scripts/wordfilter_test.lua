-- wordfilter_test.lua: `moonchat script test` runs this (make test too).

test("listed words become asterisks, whatever their case", function()
  local t = chat.testing.new{scripts = {"wordfilter.lua"}}
  local alice = t:join("alice")
  alice:say("well Darn it, HECK")
  t:expect_broadcast("lobby", "alice: well **** it, ****")
  t:expect_stored("lobby", "alice: well **** it, ****")
end)

test("other words and longer words pass unchanged", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("darned hecks are fine")
  t:expect_broadcast("lobby", "alice: darned hecks are fine")
end)

test("the list comes from [scripts.wordfilter] words", function()
  local t = chat.testing.new{options = {wordfilter = {words = {"spam"}}}}
  local alice = t:join("alice")
  alice:say("Spam and darn")
  t:expect_broadcast("lobby", "alice: **** and darn")
end)

test("direct messages are filtered too", function()
  local t = chat.testing.new{}
  local alice, bob = t:join("alice"), t:join("bob")
  alice:direct("bob", "frak you")
  t:expect_direct(alice, "bob", "**** you")
  t:expect_received(bob, "[dm] alice: **** you")
end)
