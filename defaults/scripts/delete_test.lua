-- delete_test.lua: `moonchat script test` runs this (make test too).

test("a member deletes their own message", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("oops")
  alice:say("/delete 1")
  t:expect_send(alice, "deleted message 1")
  t:expect_eq(#t:history("lobby"), 0, "stored messages")
end)

test("not someone else's, unless a moderator", function()
  local t = chat.testing.new{moderate = {"moderator"}}
  local alice, bob = t:join("alice"), t:join("bob")
  local mod = t:join("mod", {roles = {"guest", "moderator"}})
  alice:say("hello")
  bob:say("/delete #1")
  t:expect_refused(bob, "cannot delete message 1: not your message: only moderators may delete others' messages")
  mod:say("/delete 1")
  t:expect_send(mod, "deleted message 1")
  t:expect_audit("delete", "1")
end)

test("usage and a message that does not exist", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/delete x")
  t:expect_refused(alice, "usage: /delete ID")
  alice:say("/delete 0")
  t:expect_refused(alice, "usage: /delete ID")
  alice:say("/delete 7")
  t:expect_refused(alice, "cannot delete message 7: no such message")
end)

test("own messages only for a while", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("old news")
  t:advance(16 * 60)
  alice:say("/delete 1")
  t:expect_refused(alice, "cannot delete message 1: too late: your own messages can be deleted for 15m after sending")
end)
