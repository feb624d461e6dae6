-- quit.lua: leave the chat by typing "quit" (as in the classic chat
-- servers) or "/quit [message]". The room gets a goodbye notice, then the
-- connection is closed with code 1000.

local function quit(user, why)
  local text = user.name .. " has quit"
  if why and why ~= "" then
    text = text .. " (" .. why .. ")"
  end
  chat.broadcast(user.room, text)
  chat.kick(user, "goodbye")
end

-- A bare "quit" is an ordinary message, not a command: catch it before the
-- other message handlers (priority 100) and drop it, so the room never
-- sees it as chat.
chat.on("message", function(msg)
  -- The length test first keeps this cheap for the many longer messages.
  -- "/me quit" is an action (msg.action), not a wish to leave; nor is
  -- "quit" sent to someone as a direct message (msg.to).
  if not msg.action and not msg.to and #msg.text <= 16 and msg.text:lower():match("^%s*quit%s*$") then
    quit(msg.user)
    return false
  end
end, 100)

chat.command("quit", function(user, args)
  quit(user, args)
end, "/quit [message]: leave the chat")
