-- me.lua: /me ACTION tells the room what you are doing ("* alice waves").
-- It is a notice, not a chat message, so it is not kept in the history.

chat.command("me", function(user, args)
  if args == "" then
    return false, "usage: /me ACTION"
  end
  chat.broadcast(user.room, user.name .. " " .. args)
end, "/me ACTION: tell the room what you are doing")
