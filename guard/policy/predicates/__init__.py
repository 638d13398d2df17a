"""Predicate runtimes behind one batch ABI: Python codegen, Wasm (wasmtime), Lua (LuaJIT via lupa).

:func:`backend` returns the runtime by name; wasmtime and lupa are imported only when a policy
asks for their runtime.
"""

from __future__ import annotations

from functools import cache

from guard.errors import PolicyError
from guard.policy.predicates.abi import RUNTIMES, Backend

__all__ = ["backend"]


@cache
def backend(name: str) -> Backend:
    """Return the ``wasm`` or ``lua`` runtime (``python`` is the engine's own codegen path)."""
    try:
        if name == "wasm":
            from guard.policy.predicates.wasm import WasmBackend  # wasmtime only on demand

            return WasmBackend()
        if name == "lua":
            from guard.policy.predicates.lua import LuaBackend  # lupa only on demand

            return LuaBackend()
    except ImportError as exc:
        raise PolicyError(
            f"runtime {name}: {exc.name} is not installed (scripts/setup installs it; "
            f"or pip install 'kestrel-guard[{name}]')"
        ) from exc
    batch_runtimes = ", ".join(r for r in RUNTIMES if r != "python")
    raise PolicyError(f"runtime: expected one of {batch_runtimes}, got {name!r}")
