-- wordfilter.lua: replaces the words listed here with asterisks, whatever
-- their case ("Darn" becomes "****"). Edit the list and save: the server
-- reloads the scripts within a second.

local words = { "darn", "heck", "frak" }

local banned = {}
for _, w in ipairs(words) do
  banned[w:lower()] = true
end

chat.on("message", function(msg)
  -- gsub returns the new text and a count; the parentheses keep the text.
  return (msg.text:gsub("%a+", function(word)
    if banned[word:lower()] then
      return string.rep("*", #word)
    end
  end))
end)
