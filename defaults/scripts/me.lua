-- me.lua: /me ACTION tells the room what you are doing ("* alice waves").
-- chat.action posts it like a message you sent: message handlers see it
-- (with msg.action = true), it is kept in the history and replayed.

chat.command("me", function(user, args)
  if args == "" then
    return false, "usage: /me ACTION"
  end
  chat.action(user, args)
end, "/me ACTION: tell the room what you are doing")
