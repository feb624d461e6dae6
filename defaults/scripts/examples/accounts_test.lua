-- accounts_test.lua: `moonchat script test scripts/examples` runs this
-- (make test too).

test("/register makes the name an account that logs in", function()
  local t = chat.testing.new{}
  local alice = t:join("alice")
  alice:say("/register correct horse")
  t:expect_send(alice, "registered alice: log in with this name and password to keep it yours")
  t:expect_not_stored("lobby", "alice: /register correct horse")
  local id = t:login("Alice", "correct horse")
  t:expect_eq(id, {id = "accounts:alice", name = "alice", roles = {}})
  local none, why = t:login("alice", "wrong horse")
  t:expect_eq(none, nil)
  t:expect_eq(why, "wrong name or password")
  none, why = t:login("bob", "correct horse")
  t:expect_eq(why, "wrong name or password", "an unknown name")
end)

test("refusals", function()
  local t = chat.testing.new{options = {accounts = {min_password_length = 12}}}
  local alice = t:join("alice")
  alice:say("/register short")
  t:expect_refused(alice, "a password needs at least 12 characters")
  alice:say("/register")
  t:expect_refused(alice, "usage: /register PASSWORD")
  alice:say("/register long enough password")
  local other = t:join("alice", {room = "dev"})
  other:say("/register another long password")
  t:expect_refused(other, "the name alice is registered already")
  local member = t:join("carol", {id = "acc-c"})
  member:say("/register whatever password")
  t:expect_refused(member, "you are logged in to an account already")
end)
