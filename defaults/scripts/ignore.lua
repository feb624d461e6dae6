-- ignore.lua: /ignore NICK stops NICK's messages reaching you (live and in
-- the history you are sent), /unignore NICK brings them back, /ignore
-- alone lists whom you ignore. An account's list is kept across restarts;
-- a guest's, and ignoring a guest, last for the session.

local function find(room, nick)
  for _, u in ipairs(chat.users(room)) do
    if u.name:lower() == nick:lower() then
      return u
    end
  end
end

chat.command("ignore", function(user, args)
  local nick = args:match("^%s*(%S+)%s*$")
  if not nick then
    local list = chat.ignored(user) or {}
    if #list == 0 then
      return "you ignore nobody"
    end
    local names = {}
    for _, e in ipairs(list) do
      names[#names + 1] = (e.name ~= "" and e.name) or e.account
    end
    return "you ignore: " .. table.concat(names, ", ")
  end
  local target = find(user.room, nick)
  if not target then
    return false, "no user " .. nick .. " here"
  end
  local ok, err = chat.ignore(user, target)
  if not ok then
    return false, "cannot ignore " .. nick .. ": " .. err
  end
  return "you now ignore " .. target.name
end, "/ignore [NICK]: hide NICK's messages from you (alone: list)")

chat.command("unignore", function(user, args)
  local nick = args:match("^%s*(%S+)%s*$")
  if not nick then
    return false, "usage: /unignore NICK"
  end
  -- Someone on the list who is not here is found by name or account id.
  local target = find(user.room, nick)
  if not target then
    for _, e in ipairs(chat.ignored(user) or {}) do
      if (e.name ~= "" and e.name:lower() == nick:lower()) or e.account == nick then
        target = e
      end
    end
  end
  if not target then
    return false, "you do not ignore " .. nick
  end
  local removed, err = chat.unignore(user, target)
  if err then
    return false, "cannot unignore " .. nick .. ": " .. err
  end
  if not removed then
    return false, "you do not ignore " .. nick
  end
  return "you no longer ignore " .. nick
end, "/unignore NICK: show NICK's messages again")
