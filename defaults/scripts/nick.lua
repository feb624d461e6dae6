-- nick.lua: /nick NAME changes your name. The chat server checks the name
-- and makes it unique in the room (bob, bob-2, ...), then tells everyone.
-- A name that looks like one in use ("Bob", "bоb" with a Cyrillic о) counts
-- as taken.

chat.command("nick", function(user, args)
  local new = args:match("^(%S+)$")
  if not new then
    return false, "usage: /nick NAME"
  end
  -- chat.rename raises an error for a name the server refuses; pcall turns
  -- it into an answer for the user instead of a failed command.
  local ok, given = pcall(chat.rename, user, new)
  if not ok then
    return false, "cannot change your name: " .. tostring(given):gsub("^.-chat%.rename: ", "")
  end
  if given ~= new then
    return "that name is taken or looks like one in use; you are now " .. given
  end
end, "/nick NAME: change your name")
