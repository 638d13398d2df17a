-- Shannon entropy, in bits per byte, of a string: lua:entropy(process.command_line) > 4.5
-- Runs sandboxed (no io, os, require, load, debug) under the instruction and memory budget.
local log, ln2 = math.log, math.log(2)

function entropy(s)
  if type(s) ~= "string" or #s == 0 then
    return 0
  end
  local counts, n = {}, #s
  for i = 1, n do
    local b = s:byte(i)
    counts[b] = (counts[b] or 0) + 1
  end
  local h = 0
  for _, c in pairs(counts) do
    local p = c / n
    h = h - p * log(p) / ln2
  end
  return h
end
