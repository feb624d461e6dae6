-- accounts.lua: accounts kept by a script. A guest registers the name they
-- are using with "/register PASSWORD"; from then on the chat page's log-in
-- form (POST /api/login) signs them in under that name, which is theirs
-- from their first log-in on: nobody else gets it, across restarts too.
--
-- Not loaded by default: `moonchat init` writes it to scripts/examples/;
-- move it up to scripts/ to use it. Options, in config.toml:
--
--   [scripts.accounts]
--   min_password_length = 8
--
-- Passwords are kept as argon2id hashes (chat.password_hash) in this
-- script's chat.kv, under "account:" and the name in lower case. A
-- "/register ..." message is a command: it is never stored or shown to
-- anyone, and nothing below repeats the password.

local min_length = chat.options.min_password_length or 8
if type(min_length) ~= "number" or min_length < 1 or min_length % 1 ~= 0 then
  error("[scripts.accounts] min_password_length must be a whole number of at least 1")
end

local function key(name)
  return "account:" .. name:lower()
end

-- A log-in for a name nobody registered checks the password against this
-- hash anyway, so that it takes as long as a wrong password: the answer's
-- timing does not tell which names are registered.
local unknown_hash = assert(chat.password_hash("not a registered account"))

chat.command("register", function(user, password)
  if user.id then
    return false, "you are logged in to an account already"
  end
  if password == "" then
    return false, "usage: /register PASSWORD"
  end
  -- Characters, not bytes: count the bytes that start a UTF-8 sequence.
  local _, length = password:gsub("[^\128-\191]", "")
  if length < min_length then
    return false, "a password needs at least " .. min_length .. " characters"
  end
  local stored, err = chat.kv.get(key(user.name))
  if err then
    return false, "cannot register now: " .. err
  end
  if stored then
    return false, "the name " .. user.name .. " is registered already"
  end
  local hash, err = chat.password_hash(password)
  if not hash then
    return false, "cannot register: " .. err
  end
  -- The stored value: the hash (it has no spaces), a space, the name.
  local ok, err = chat.kv.set(key(user.name), hash .. " " .. user.name)
  if not ok then
    return false, "cannot register: " .. err
  end
  return "registered " .. user.name .. ": log in with this name and password to keep it yours"
end, "/register PASSWORD: make your current name an account")

chat.on("login", function(req)
  if req.name == "" or #req.name > 64 then
    return false, "wrong name or password"
  end
  local stored, err = chat.kv.get(key(req.name))
  if err then
    error("cannot read the accounts: " .. err) -- the log-in fails (503), it is not refused
  end
  local hash, name = (stored or ""):match("^(%S+) (.+)$")
  if not hash then
    chat.password_check(unknown_hash, req.password)
    return false, "wrong name or password"
  end
  local ok
  ok, err = chat.password_check(hash, req.password)
  if err then
    chat.log("accounts: cannot check the password of " .. name .. ": " .. err)
  end
  if ok ~= true then
    return false, "wrong name or password"
  end
  return { id = "accounts:" .. name:lower(), name = name }
end)
