-- fails while loading
local x = 1
error("no config")
