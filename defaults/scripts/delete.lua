-- delete.lua: /delete ID deletes message ID of this room for everyone
-- (chat pages hide it; the history loses it). Moderators (the room rules'
-- moderate roles, and "admin") may delete any message and the audit log
-- names them; members may delete their own for a while after sending it:
--
--   [scripts.delete]
--   delete_own_window = "15m"   -- seconds, or a number with s, m, h or d
--
-- A member's own message is one their account sent (a guest: one sent
-- under their name by a guest), among the room's last 1000 messages.

local window = chat.options.delete_own_window or "15m"
local units = { [""] = 1, s = 1, m = 60, h = 3600, d = 86400 }
local n, unit = tostring(window):match("^(%d+)([smhd]?)$")
if not n then
  error("[scripts.delete] delete_own_window must be seconds or a number with s, m, h or d, got " .. tostring(window))
end
local own_window = tonumber(n) * units[unit]

local function moderator(user)
  return chat.may(user, "moderate") or chat.has_role(user, "admin")
end

chat.command("delete", function(user, args)
  local id = tonumber(args:match("^#?(%d+)$"))
  if not id then
    return false, "usage: /delete ID"
  end
  if not moderator(user) then
    local recent, err = chat.history(user.room, 1000)
    if not recent then
      return false, "cannot delete message " .. id .. ": " .. err
    end
    local msg
    for _, m in ipairs(recent) do
      if m.id == id then
        msg = m
      end
    end
    if not msg then
      return false, "no message " .. id .. " among the last messages of " .. user.room
    end
    local mine = msg.account == user.id and (user.id or msg.user == user.name)
    if not mine then
      return false, "message " .. id .. " is not yours: only moderators may delete it"
    end
    if os.time() - msg.ts > own_window then
      return false, "message " .. id .. " is older than " .. window .. ": only moderators may delete it now"
    end
  end
  local ok, err = chat.redact(user.room, id, user)
  if not ok then
    return false, "cannot delete message " .. id .. ": " .. err
  end
  return "deleted message " .. id
end, "/delete ID: delete your message (within " .. window .. "; moderators: any)")
