-- wordfilter.lua: replaces the words listed here with asterisks, whatever
-- their case ("Darn" becomes "****"). Edit the list and save: the server
-- reloads the scripts within a second.

local words = { "darn", "heck", "frak" }

local banned = {}
for _, w in ipairs(words) do
  banned[w:lower()] = true
end

local function stars(word)
  if banned[word:lower()] then
    return string.rep("*", #word)
  end
end

chat.on("message", function(msg)
  -- This runs for every message: a plain substring search first is much
  -- cheaper than the word-by-word replacement most messages do not need.
  local lower = msg.text:lower()
  for word in pairs(banned) do
    if lower:find(word, 1, true) then
      -- gsub returns the new text and a count; the parentheses keep the text.
      return (msg.text:gsub("%a+", stars))
    end
  end
end)
