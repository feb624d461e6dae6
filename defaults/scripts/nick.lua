-- nick.lua: /nick NAME changes your name. The chat server checks the name
-- and makes it unique in the room (bob, bob-2, ...), then tells everyone.
-- A name that looks like one in use ("Bob", "bоb" with a Cyrillic о) counts
-- as taken.

chat.command("nick", function(user, args)
  local new = args:match("^(%S+)$")
  if not new then
    return false, "usage: /nick NAME"
  end
  -- chat.rename returns nil and the reason for a name the server refuses
  -- (such as "invalid name: ':' not allowed"): an answer for the user.
  local given, err = chat.rename(user, new)
  if not given then
    return false, "cannot change your name: " .. err
  end
  if given ~= new then
    return "that name is taken or looks like one in use; you are now " .. given
  end
end, "/nick NAME: change your name")
