-- welcome.lua: greets each newcomer with a notice only they see.

chat.on("join", function(user)
  chat.send(user, "welcome to " .. user.room .. "! /help lists the commands; type quit to leave")
end)
