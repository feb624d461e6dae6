-- msg.lua: /msg NICK text sends a direct message to NICK, wherever they
-- are connected (every room, every tab); "[dm] alice: text" in plain text.
-- Direct messages go through the message handlers with msg.to set (the
-- word filter covers them too), never as commands. Conversations of two
-- accounts are kept in the history; one with a guest lasts for the guest's
-- session. Its setting, in config.toml:
--
--   [scripts.msg]
--   guests = true   -- false: guests may not send direct messages
--
-- The refusal is a message handler, so it covers every way of sending one
-- (/msg, chat.direct, the chat page's moonchat.v1 "direct" event).

local guests = chat.options.guests
if guests == nil then
  guests = true
end
if type(guests) ~= "boolean" then
  error("[scripts.msg] guests must be true or false, got " .. tostring(guests))
end

chat.command("msg", function(user, args)
  local nick, text = args:match("^(%S+)%s+(.-)%s*$")
  if not nick or text == "" then
    return false, "usage: /msg NICK text"
  end
  local ok, err = chat.direct(user, nick, text)
  if not ok then
    -- "no such user: NICK" says it all; other errors need the context.
    if err:sub(1, 13) == "no such user:" then
      return false, err
    end
    return false, "message to " .. nick .. " not sent: " .. err
  end
end, "/msg NICK text: send NICK a direct message")

if not guests then
  -- Early (priority 90) so that no other handler acts on a message that
  -- will not be sent.
  chat.on("message", function(msg)
    if msg.to and chat.has_role(msg.user, "guest") then
      return false, "guests may not send direct messages here"
    end
  end, 90)
end
