-- Shannon entropy of a string's bytes, in bits per byte; nil (null) gives 0.
function entropy(s)
  if s == nil or #s == 0 then return 0 end
  local counts = {}
  for i = 1, #s do
    local b = string.byte(s, i)
    counts[b] = (counts[b] or 0) + 1
  end
  local h, n = 0, #s
  for _, c in pairs(counts) do
    local p = c / n
    h = h - p * math.log(p) / math.log(2)
  end
  return h
end
