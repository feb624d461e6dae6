-- who.lua: /who lists the people in your room. A command that returns a
-- string sends it back to the user alone.

chat.command("who", function(user)
  local names = {}
  for _, u in ipairs(chat.users(user.room)) do
    names[#names + 1] = u.name
  end
  return #names .. " in " .. user.room .. ": " .. table.concat(names, ", ")
end, "/who: list the people in this room")
