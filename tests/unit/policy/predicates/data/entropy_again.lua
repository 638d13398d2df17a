function entropy(s) return 0 end
