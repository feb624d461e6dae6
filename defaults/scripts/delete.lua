-- delete.lua: /delete ID deletes message ID of this room for everyone
-- (chat pages hide it; the history loses it). The server decides
-- (chat.delete): moderators (the room rules' moderate roles, and "admin")
-- may delete any message; members their own for a while after sending it,
-- as long as [chat] delete_own_window in config.toml says (default 15m;
-- "0s": only moderators delete). A member's own message is one their
-- account sent, from any tab; a guest's, one sent on this connection.
-- The audit log names who deleted.

chat.command("delete", function(user, args)
  local id = tonumber(args:match("^#?(%d+)$"))
  if not id or id < 1 then
    return false, "usage: /delete ID"
  end
  local ok, err = chat.delete(user, id)
  if not ok then
    return false, "cannot delete message " .. id .. ": " .. err
  end
  return "deleted message " .. id
end, "/delete ID: delete your message (moderators: any)")
