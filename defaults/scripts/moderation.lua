-- moderation.lua: commands for a room's moderators. The chat server does
-- the work (bans and mutes are stored, with their expiry, and enforced on
-- every path; every action goes into the audit log: moonchat audit,
-- GET /api/audit);
-- this script decides who may use them and how they read:
--
--   /kick NICK [reason]              put someone out (they may come back)
--   /ban NICK [duration] [reason]    keep them out of this room
--   /unban NICK
--   /mute NICK [duration] [reason]   they stay and read, but cannot post
--   /unmute NICK
--   /bans                            the bans and mutes of this room
--   /slow SECONDS|off                one message per SECONDS per member
--   /topic [TEXT|-]                  show, set or (-) clear the topic
--
-- A duration is seconds or a number with s, m, h, d or w: 90, 10m, 2h, 7d;
-- none means until lifted. NICK is someone in the room (an account is
-- banned by its account, a guest by name), or account:ID, name:NICK or
-- addr:ADDRESS (an IP address or CIDR prefix, 203.0.113.0/24).
--
-- Moderators are the roles the room rules let moderate ([rooms."PATTERN"]
-- moderate = [...] in config.toml) and the role "admin".

local function moderator(user)
  return chat.may(user, "moderate") or chat.has_role(user, "admin")
end

local function member(room, nick)
  nick = nick:lower()
  for _, u in ipairs(chat.users(room)) do
    if u.name:lower() == nick then
      return u
    end
  end
end

-- target returns whom NICK means and how to name it, or nil and why not.
-- The nick of an account banned or muted here is remembered (chat.kv), so
-- that /bans and /unban know it once they have gone.
local function target(room, nick)
  local kind, value = nick:match("^(%a+):(.+)$")
  if kind == "account" or kind == "name" or kind == "addr" then
    return { [kind] = value }, nick
  end
  local u = member(room, nick)
  if not u then
    return nil, "nobody called " .. nick .. " is in " .. room
  end
  if u.id then
    chat.kv.set("nick:" .. u.id, u.name)
  end
  return u, u.name
end

-- describe names a restriction's target as /bans shows it.
local function describe(t)
  if t.account then
    local nick = chat.kv.get("nick:" .. t.account)
    return (nick or "?") .. " (account " .. t.account .. ")"
  end
  return t.name or t.addr
end

-- matches tells whether NICK (as typed to /unban) means target t.
local function matches(t, nick)
  nick = nick:lower()
  local kind, value = nick:match("^(%a+):(.+)$")
  if kind then
    return (t[kind] or ""):lower() == value
  end
  local known = t.account and chat.kv.get("nick:" .. t.account)
  return (t.name or t.addr or ""):lower() == nick or (known or ""):lower() == nick
end

local function restrict(kind, verb)
  return function(user, args)
    if not moderator(user) then
      return false, "only moderators may /" .. kind
    end
    local nick, rest = args:match("^(%S+)%s*(.*)$")
    if not nick then
      return false, "usage: /" .. kind .. " NICK [duration] [reason]"
    end
    local duration, reason = rest:match("^(%d+[smhdw]?)$"), ""
    if not duration then
      duration, reason = rest:match("^(%d+[smhdw]?)%s+(.*)$")
      reason = reason or rest
    end
    local who, name = target(user.room, nick)
    if not who then
      return false, name
    end
    local ok, err = chat[kind](user.room, who, { duration = duration, reason = reason, by = user })
    if not ok then
      return false, "cannot " .. kind .. " " .. name .. ": " .. err
    end
    chat.broadcast(user.room, name .. " was " .. verb .. " by " .. user.name
      .. (duration and " for " .. duration or "")
      .. (reason ~= "" and ": " .. reason or ""))
  end
end

local function lift(kind, what)
  return function(user, args)
    if not moderator(user) then
      return false, "only moderators may /un" .. kind
    end
    if args == "" or args:find("%s") then
      return false, "usage: /un" .. kind .. " NICK"
    end
    for _, r in ipairs(chat.restrictions(user.room)) do
      if r.kind == kind and matches(r.target, args) then
        if r.room == "" and not chat.has_role(user, "admin") then
          return false, describe(r.target) .. " is " .. what .. " in every room: only an admin may lift it"
        end
        local ok, err = chat["un" .. kind](r.room, r.target, user)
        if not ok then
          return false, "cannot un" .. kind .. " " .. args .. ": " .. (err or "not " .. what .. " any more")
        end
        chat.broadcast(user.room, describe(r.target) .. " is no longer " .. what .. " (" .. user.name .. ")")
        return
      end
    end
    return false, args .. " is not " .. what .. " in " .. user.room
  end
end

chat.command("kick", function(user, args)
  if not moderator(user) then
    return false, "only moderators may /kick"
  end
  local nick, reason = args:match("^(%S+)%s*(.*)$")
  if not nick then
    return false, "usage: /kick NICK [reason]"
  end
  local u = member(user.room, nick)
  if not u then
    return false, "nobody called " .. nick .. " is in " .. user.room
  end
  local why = "kicked by " .. user.name .. (reason ~= "" and ": " .. reason or "")
  local ok, err = chat.kick(u, why, user)
  if not ok then
    return false, "cannot kick " .. u.name .. ": " .. err
  end
  chat.broadcast(user.room, u.name .. " was " .. why)
end, "(moderators) /kick NICK [reason]: put someone out of the room")

chat.command("ban", restrict("ban", "banned"),
  "(moderators) /ban NICK [duration] [reason]: keep someone out of the room")
chat.command("unban", lift("ban", "banned"), "(moderators) /unban NICK: lift a ban")
chat.command("mute", restrict("mute", "muted"),
  "(moderators) /mute NICK [duration] [reason]: someone stays but cannot post")
chat.command("unmute", lift("mute", "muted"), "(moderators) /unmute NICK: lift a mute")

chat.command("bans", function(user)
  if not moderator(user) then
    return false, "only moderators may /bans"
  end
  local list = chat.restrictions(user.room)
  if #list == 0 then
    return "nobody is banned or muted in " .. user.room
  end
  for _, r in ipairs(list) do
    chat.send(user, r.kind .. " " .. describe(r.target)
      .. (r.room == "" and " in every room" or "")
      .. (r.expires and os.date("! until %Y-%m-%d %H:%M UTC", r.expires) or "")
      .. " by " .. r.by .. (r.reason ~= "" and ": " .. r.reason or ""))
  end
end, "(moderators) /bans: list the bans and mutes of this room")

chat.command("slow", function(user, args)
  if args == "" then
    local slow = chat.room_settings(user.room).slow
    return slow > 0 and "slow mode: one message per " .. slow .. "s" or "slow mode is off"
  end
  if not moderator(user) then
    return false, "only moderators may change /slow"
  end
  if args ~= "off" and not args:match("^%d+[smhdw]?$") then
    return false, "usage: /slow SECONDS|off"
  end
  local ok, err = chat.set_room_settings(user.room, { slow = args == "off" and 0 or args }, user)
  if not ok then
    return false, "cannot change slow mode: " .. err
  end
end, "/slow [SECONDS|off]: show or (moderators) set slow mode")

chat.command("topic", function(user, args)
  if args == "" then
    local topic = chat.room_settings(user.room).topic
    return topic ~= "" and "topic: " .. topic or user.room .. " has no topic"
  end
  if not moderator(user) then
    return false, "only moderators may change the /topic"
  end
  local ok, err = chat.set_room_settings(user.room, { topic = args == "-" and "" or args }, user)
  if not ok then
    return false, "cannot change the topic: " .. err
  end
end, "/topic [TEXT|-]: show or (moderators) set or clear the topic")
