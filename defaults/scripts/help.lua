-- help.lua: /help lists every command the scripts registered, with the
-- help text given to chat.command, one notice per command. Commands whose
-- help starts with "(moderators)" are listed only to those who may use
-- them: the room rules' moderators and the role "admin" (moderation.lua).

chat.command("help", function(user)
  local moderator = chat.may(user, "moderate") or chat.has_role(user, "admin")
  for _, c in ipairs(chat.commands()) do
    if moderator or c.help:sub(1, 12) ~= "(moderators)" then
      if c.help ~= "" then
        chat.send(user, c.help)
      else
        chat.send(user, "/" .. c.name)
      end
    end
  end
end, "/help: list the commands")
