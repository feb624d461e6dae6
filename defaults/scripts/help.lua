-- help.lua: /help lists every command the scripts registered, with the
-- help text given to chat.command, one notice per command.

chat.command("help", function(user)
  for _, c in ipairs(chat.commands()) do
    if c.help ~= "" then
      chat.send(user, c.help)
    else
      chat.send(user, "/" .. c.name)
    end
  end
end, "/help: list the commands")
