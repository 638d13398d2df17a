function broken(s)
  return s ==
end
