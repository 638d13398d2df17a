function grow(s)
  local t, i = {}, 0
  while true do
    i = i + 1
    t[i] = { i, i, i, i }
  end
end

function double(s)
  local x = "x"
  while true do x = x .. x end
end

function rep(s)
  return #string.rep("x", 1e9)
end

function ok(s)
  return s == "fine"
end
