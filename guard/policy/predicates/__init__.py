"""Predicate runtimes behind one batch ABI: Python codegen, Wasm (wasmtime), Lua (LuaJIT via lupa)."""
