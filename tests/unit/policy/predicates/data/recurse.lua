function deep(n)
  return 1 + deep((n or 0) + 1)
end

function ok(s)
  return s == "fine"
end
