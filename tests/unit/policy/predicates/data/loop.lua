function spin(s)
  local n = 0
  while true do n = n + 1 end
end

-- catches every error it can and keeps going
function swallow(s)
  while true do
    pcall(function() while true do end end)
    xpcall(function() while true do end end, function(e) while true do end end)
  end
end

function ok(s)
  return s == "fine"
end

-- about k instructions (one FORL per iteration), then true
function burn(k)
  for i = 1, k do end
  return true
end
