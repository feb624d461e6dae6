-- help_test.lua: `moonchat script test` runs this (make test too).

local scripts = {"help.lua", "who.lua", "moderation.lua"}

test("/help lists every command with its help, moderators' hidden", function()
  local t = chat.testing.new{scripts = scripts}
  local alice = t:join("alice")
  alice:say("/help")
  t:expect_send(alice, "/help: list the commands")
  t:expect_send(alice, "/who: list the people in this room")
  t:expect_send(alice, "/slow [SECONDS|off]: show or (moderators) set slow mode")
  t:expect_no_send(alice, "(moderators) /kick NICK [reason]: put someone out of the room")
end)

test("moderators and admins see the moderators' commands", function()
  local t = chat.testing.new{scripts = scripts, moderate = {"moderator"}}
  local mod = t:join("mod", {id = "acc-mod", roles = {"user", "moderator"}})
  local admin = t:join("root", {id = "acc-root", roles = {"user", "admin"}})
  mod:say("/help")
  admin:say("/help")
  t:expect_send(mod, "(moderators) /kick NICK [reason]: put someone out of the room")
  t:expect_send(admin, "(moderators) /ban NICK [duration] [reason]: keep someone out of the room")
end)
