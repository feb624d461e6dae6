-- wordfilter.lua: replaces listed words with asterisks, whatever their
-- case ("Darn" becomes "****"). The list comes from config.toml:
--
--   [scripts.wordfilter]
--   words = ["darn", "heck", "frak"]
--
-- and is the one below when config.toml has none. Change config.toml and
-- send the server SIGHUP, or change this file and save: the scripts reload.

local words = chat.options.words or { "darn", "heck", "frak" }

if type(words) ~= "table" then
  error("[scripts.wordfilter] words must be a list of words, got " .. type(words))
end

local banned = {}
for i, w in ipairs(words) do
  if type(w) ~= "string" or w == "" then
    error("[scripts.wordfilter] words: entry " .. i .. " must be a word, got " .. tostring(w))
  end
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
