-- Probes of the sandbox from the inside.
function absent(name)  -- the global is nil here
  return _G[name] == nil and rawget(_G, name) == nil
end

function string_has(name)
  return string[name] ~= nil
end

function string_metatable()  -- what getmetatable("") hands out, by type
  local mt = getmetatable("")
  if type(mt) == "table" then return "table" end
  return mt
end

function string_meta_locked()
  local mt = getmetatable("")
  return type(mt) ~= "table" and mt ~= string
end

-- every way this environment could name the host: nothing reachable
function python_reachable()
  if python ~= nil or rawget(_G, "python") ~= nil then return true end
  for k, v in pairs(_G) do
    if type(v) == "userdata" then return true end
    if type(k) == "string" and k:lower() == "python" then return true end
  end
  for _, lib in ipairs({ string, table, math, bit }) do
    for _, v in pairs(lib) do
      if type(v) == "userdata" then return true end
    end
  end
  return false
end

-- a chunk-level attempt to change the string functions everyone else uses
local mt = getmetatable("")
if type(mt) == "table" and type(mt.__index) == "table" then
  mt.__index.lower = function() return "pwned" end
  mt.__index.sub = function() return "pwned" end
  mt.__index.find = function() return 1 end
end
string.lower = function() return "pwned" end
string.upper = function() return "PWNED" end
string.sub = function() return "pwned" end
string.find = function() return 1 end
string.byte = function() return 0 end

function method_lower(s)  -- methods on strings still reach the real string table
  return s:lower() == "abc"
end
