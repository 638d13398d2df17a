-- iterations of the outer loop of spin / swallow since the module loaded
local count = 0

function spin(s)
  while true do count = count + 1 end
end

-- catches every error it can and keeps going
function swallow(s)
  while true do
    count = count + 1
    pcall(function() while true do end end)
    xpcall(function() while true do end end, function(e) while true do end end)
  end
end

function iterations(s)
  return count
end

function ok(s)
  return s == "fine"
end

-- about k instructions (one FORL per iteration), then true
function burn(k)
  for i = 1, k do end
  return true
end
