"""The Lua predicate runtime: a lowered condition compiled to LuaJIT source, a batch per call.

:class:`LuaBackend` turns a lowered condition (:mod:`.abi`) into the source of one Lua function,
``run(n, col1, ..., host1, ...)``, that decides a whole batch in one call from Python: the columns
arrive as Lua arrays (``None`` is a hole, so ``n`` is passed), the truth of each event is computed
with three-valued logic (``true``/``false``/``nil``), and the events that are True come back as a
hex string (32 events per 8 digits, most significant first) that Python reads with ``int(s, 16)``.

Every predicate gets its own :class:`lupa.luajit21.LuaRuntime` (LuaJIT, not lupa's default Lua):
the memory cap is per runtime, so one runtime per compiled predicate keeps one rule's module state,
garbage and traps away from every other rule's.

**Trusted code.** A kernel chunk runs first in each runtime: it captures every library function
the generated code needs as locals, deletes lupa's ``python`` global, and closes the string
metatable (``getmetatable("")`` answers ``"locked"``). The generated predicate reads only those
captured locals, so nothing a user module does to its own environment reaches it. The generated
code stays JIT-compiled.

**User modules** (``.lua`` beside the policy, called as ``lua:fn(args)``): each module's chunk is
compiled text-only (``loadstring`` of source: no bytecode), gets a fresh environment table, has the
JIT switched off for itself and every function it defines (``jit.off(chunk, true)``), and runs
once, under the budget. Callable afterwards: every function the chunk returns in a table, and
every function it defines as a global of its environment (the returned table wins on a name
clash; the sandbox's own builtins are not exported). A name defined by two modules is an error.
The modules are loaded only into the runtime of a predicate that calls ``lua:`` functions.
Arguments are column values (strings as Lua strings, null as ``nil``, numbers, booleans) or
literals; a number result is compared with ``op value``, a boolean result is the truth when
``op`` is None, any other result is null.

The environment holds only: ``assert error ipairs next pairs pcall xpcall rawequal rawget rawset
select setmetatable getmetatable tonumber tostring type unpack _VERSION _G`` (the environment
itself) and copies of ``string`` (without ``dump``), ``table``, ``math`` and ``bit``. Absent:
``io os require load loadstring loadfile dofile debug jit ffi package module collectgarbage
gcinfo getfenv setfenv newproxy print coroutine string.dump`` and lupa's ``python``. ``rawset``,
``rawget`` and ``rawequal`` are kept: the one metatable trusted code relies on is the string
metatable, which they cannot touch (strings are not tables) and ``getmetatable`` does not hand
out; no table reachable from a module is protected by a metatable. ``coroutine`` is left out as
a function-resuming way to catch errors that the budget would then have to chase.

**Budgets.** Instructions: a count hook (``debug.sethook``, captured by the kernel) is armed per
batch with ``budget.for_batch(n)`` instructions when the predicate calls user code (counted down in
periods of at most :data:`HOOK_CHUNK`, since the hook count is a C int); when they run
out the hook raises, keeps raising every 1000 instructions, and the sandbox's ``pcall``/``xpcall``
re-raise, so user code cannot swallow it. Count hooks do not fire in JIT-compiled code, which is
why user functions run with the JIT off; interpreted trusted code in the same batch counts too.
Memory: the runtime's cap is lifted while the batch's columns are converted, then set to the
memory in use plus ``budget.memory_bytes`` for the call (the same cap applies while a module
loads). A runaway recursion ends in LuaJIT's own ``stack overflow``. Traps: instructions →
``fuel``, memory → ``memory``, stack overflow → ``stack``, any other Lua error → ``error``; after
one the hook is cleared and the garbage collected, and the next batch runs normally.

Limits: instructions are counted between calls into C, not inside one: a single library call on
a large string (a backtracking Lua pattern in ``string.find``/``match``/``gsub``, ``string.rep``
under the memory cap) runs to its end before the hook can fire. The ``stack`` kind is read from
the error message, so a module that raises ``"stack overflow"`` itself is reported as ``stack``
(``fuel`` and ``memory`` are not spoofable: a flag set by the hook, lupa's memory-error type).
Outside the ABI (a leaf seeing a value of a kind its column does not declare): unequal to every
literal, not in any set, not ordered (false), and null for the string functions.

Size: over 700 lines on purpose: one runtime — the Lua code generator, its sandbox and its budget
hook — whose generated code and sandbox depend on each other line by line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import lupa.luajit21 as lj

from guard.errors import PolicyCompileError, PolicyError, PredicateTrap
from guard.policy.predicates.abi import (
    COMPARE_OPS,
    Budget,
    ColumnSpec,
    HostColumn,
    NativeValue,
    PAffix,
    PAnd,
    PCompare,
    PConst,
    PExpr,
    PHost,
    PIn,
    PNot,
    POr,
    PUser,
    PWildcard,
    UserModule,
)

__all__ = ["LuaBackend", "LuaBatch"]

#: named locals for columns, host columns and constants in ``run``; the rest are read from a table
#: (LuaJIT allows 200 locals and 60 upvalues per function)
_MAX_NAMED: Final = 100
#: the most instructions one count-hook period covers (``debug.sethook`` takes a C int)
HOOK_CHUNK: Final = 1_000_000_000
_LUA_OPS: Final = {"==": "==", "!=": "~=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ASCII_FOLD: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# The trusted kernel: runs before any user code; returns the helpers the generated code uses.
_KERNEL: Final = r"""
local G = _G
local type, next, pairs, error, pcall, xpcall, select = type, next, pairs, error, pcall, xpcall, select
local setfenv, loadstring, collectgarbage = setfenv, loadstring, collectgarbage
local sethook = debug.sethook
local jit_off = jit.off
local byte, sub, find, lower = string.byte, string.sub, string.find, string.lower
local concat, tohex = table.concat, bit.tohex

python = nil
package.loaded.python = nil
getmetatable("").__metatable = "locked"

-- the instruction budget: the hook fires every `step` instructions until `remaining` is spent
-- (a count hook takes a C int, so a larger allowance is counted down in chunks)
local remaining, step, chunk, exhausted = 0, 0, 1, false
local hook
hook = function()
  if exhausted then error("instruction budget exhausted", 0) end
  remaining = remaining - step
  if remaining > 0 then
    step = remaining < chunk and remaining or chunk
    sethook(hook, "", step)
    return
  end
  exhausted = true
  sethook(hook, "", 1000)
  error("instruction budget exhausted", 0)
end
local function arm(total, size)
  exhausted = false
  remaining, chunk = total, size
  step = total < chunk and total or chunk
  sethook(hook, "", step)
end
local function spent()
  local e = exhausted
  exhausted = false
  return e
end

-- the sandbox
local function copy(t, drop)
  local c = {}
  for k, v in pairs(t) do
    if k ~= drop then c[k] = v end
  end
  return c
end
local function checked(ok, ...)
  if exhausted then error("instruction budget exhausted", 0) end
  return ok, ...
end
local function s_pcall(f, ...) return checked(pcall(f, ...)) end
local function s_xpcall(f, h, ...) return checked(xpcall(f, h, ...)) end
jit_off(checked)
jit_off(s_pcall)
jit_off(s_xpcall)
local BUILTINS = {
  "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget", "rawset", "select",
  "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack", "_VERSION",
}
local function sandbox()
  local env = {}
  for _, name in pairs(BUILTINS) do env[name] = G[name] end
  env.pcall, env.xpcall = s_pcall, s_xpcall
  env.string = copy(G.string, "dump")
  env.table = copy(G.table)
  env.math = copy(G.math)
  env.bit = copy(G.bit)
  env._G = env
  return env
end

-- load a module: compile (text only), JIT off, run once in a fresh environment;
-- return its exported functions, or nil and the Lua message
local function load_module(source, chunkname)
  local chunk, err = loadstring(source, chunkname)
  if not chunk then return nil, err end
  jit_off(chunk, true)
  local env = sandbox()
  local fresh = {}
  for k, v in next, env do fresh[k] = v end
  setfenv(chunk, env)
  local ret = chunk()
  local out = {}
  for k, v in next, env do
    if type(k) == "string" and type(v) == "function" and fresh[k] ~= v then out[k] = v end
  end
  if type(ret) == "table" then
    for k, v in next, ret do
      if type(k) == "string" and type(v) == "function" then out[k] = v end
    end
  end
  return out
end

-- EQL wildcard: a pattern is a list of chunks split at "*"; a chunk is a list of literal
-- strings and numbers (a run of that many "?", one UTF-8 code point each)
local function cp_len(b)
  if b < 0xC0 then return 1 end
  if b < 0xE0 then return 2 end
  if b < 0xF0 then return 3 end
  return 4
end
-- the position after `items` matched at i, not reading past `last`; nil when they do not match
local function chunk_at(s, i, last, items)
  for j = 1, #items do
    local it = items[j]
    if type(it) == "number" then
      for _ = 1, it do
        if i > last then return nil end
        i = i + cp_len(byte(s, i))
      end
      if i > last + 1 then return nil end
    else
      local m = #it
      if i + m - 1 > last or sub(s, i, i + m - 1) ~= it then return nil end
      i = i + m
    end
  end
  return i
end
-- the start of `items` matched to end just before e, not reading before `first`; or nil
local function chunk_before(s, e, first, items)
  for j = #items, 1, -1 do
    local it = items[j]
    if type(it) == "number" then
      for _ = 1, it do
        e = e - 1
        if e < first then return nil end
        local b = byte(s, e)
        while b >= 0x80 and b < 0xC0 and e > first do
          e = e - 1
          b = byte(s, e)
        end
      end
    else
      local m = #it
      if e - m < first or sub(s, e - m, e - 1) ~= it then return nil end
      e = e - m
    end
  end
  return e
end
local function glob(s, chunks)
  local len, k = #s, #chunks
  if k == 1 then return chunk_at(s, 1, len, chunks[1]) == len + 1 end
  local i = chunk_at(s, 1, len, chunks[1])
  if i == nil then return false end
  local e = chunk_before(s, len + 1, i, chunks[k])
  if e == nil then return false end
  for c = 2, k - 1 do
    local items = chunks[c]
    local head = items[1]
    local p, found = i, nil
    while p <= e do
      if type(head) == "string" then
        p = find(s, head, p, true)
        if p == nil or p + #head > e then return false end
      end
      found = chunk_at(s, p, e - 1, items)
      if found ~= nil then break end
      if type(head) == "string" then p = p + 1 else p = p + cp_len(byte(s, p) or 0) end
    end
    if found == nil then return false end
    i = found
  end
  return true
end

return {
  arm = arm, spent = spent, sethook = sethook, load_module = load_module,
  H = {
    byte = byte, sub = sub, find = find, lower = lower, type = type, concat = concat,
    tohex = tohex, glob = glob, huge = math.huge, ceil = math.ceil,
  },
}
"""


def _lua_str(text: str) -> str:
    """Return a Lua string literal of ``text``'s UTF-8 bytes (decimal escapes, no pattern chars matter)."""
    out = ['"']
    for b in text.encode("utf-8"):
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C):
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    out.append('"')
    return "".join(out)


def _lua_num(value: float) -> str:
    if math.isnan(value):
        return "(0/0)"
    if value in (float("inf"), float("-inf")):
        return "huge" if value > 0 else "(-huge)"
    if value == int(value) and abs(value) <= 2**53:
        return str(int(value))
    return repr(value)


def _as_double(value: int | float) -> tuple[float, bool]:
    """Return ``value`` as the nearest double and whether that is exact."""
    if isinstance(value, float):
        return value, True
    try:
        f = float(value)
    except OverflowError:
        return (float("inf") if value > 0 else float("-inf")), False
    return f, int(f) == value


def _num_compare(var: str, op: str, lit: int | float) -> str:
    """Return a Lua expression: number ``var`` OP ``lit``, exact although Lua numbers are doubles."""
    f, exact = _as_double(lit)
    if exact:
        return f"{var} {_LUA_OPS[op]} {_lua_num(f)}"
    # no double equals lit; v < lit iff v <= f when f rounded down (f < lit), else v < f
    if op == "==":
        return "false"
    if op == "!=":
        return "true"
    if op in ("<", "<="):
        return f"{var} <= {_lua_num(f)}" if f < lit else f"{var} < {_lua_num(f)}"
    return f"{var} >= {_lua_num(f)}" if f > lit else f"{var} > {_lua_num(f)}"


def _lua_literal(value: NativeValue) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _lua_str(value)
    f, exact = _as_double(value)
    if not exact:
        raise PolicyCompileError(f"lua: the literal {value} is not exactly representable as a Lua number")
    return _lua_num(f)


def _wildcard_chunks(pattern: str) -> list[list[str | int]]:
    """Split an EQL wildcard at ``*``; each chunk: literal runs and counts of ``?``."""
    chunks: list[list[str | int]] = []
    for part in pattern.split("*"):
        items: list[str | int] = []
        for j, lit in enumerate(part.split("?")):
            if j:
                if items and isinstance(items[-1], int):
                    items[-1] += 1
                else:
                    items.append(1)
            if lit:
                items.append(lit)
        chunks.append(items)
    return chunks


@dataclass
class _Gen:
    """The state of one code generation: constants, user functions, columns read, labels."""

    columns: Sequence[ColumnSpec]
    host_count: int
    consts: list[str] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)
    label: int = 0
    var: int = 0

    def const(self, lua_expr: str) -> str:
        self.consts.append(lua_expr)
        k = len(self.consts)
        return f"k{k}" if k <= _MAX_NAMED else f"K[{k}]"

    def col(self, index: int) -> str:
        if index < 0 or index >= len(self.columns):
            raise PolicyCompileError(
                f"lua: the condition reads column {index}, the batch has {len(self.columns)}"
            )
        return f"c{index + 1}" if index < _MAX_NAMED else f"A[{index + 1}]"

    def host(self, index: int) -> str:
        if index < 0 or index >= self.host_count:
            raise PolicyCompileError(
                f"lua: the condition reads host leaf {index}, the batch has {self.host_count}"
            )
        slot = len(self.columns) + index
        return f"h{index + 1}" if slot < _MAX_NAMED else f"A[{slot + 1}]"

    def fresh(self, prefix: str) -> str:
        self.var += 1
        return f"{prefix}{self.var}"

    def kinds(self, index: int) -> frozenset[str]:
        return self.columns[index].kinds


def _emit(g: _Gen, e: PExpr, dst: str, ind: str) -> Iterator[str]:
    """Yield the Lua statements that set ``dst`` to the truth of ``e`` (true, false or nil)."""
    if isinstance(e, PConst):
        yield f"{ind}{dst} = {_lua_literal(e.value)}"
    elif isinstance(e, PHost):
        yield f"{ind}{dst} = {g.host(e.index)}[i]"
    elif isinstance(e, PAnd | POr):
        if not e.terms:
            yield f"{ind}{dst} = {'true' if isinstance(e, PAnd) else 'false'}"
            return
        stop, keep = ("false", "true") if isinstance(e, PAnd) else ("true", "false")
        end = g.fresh("L")
        x = g.fresh("x")
        yield f"{ind}{dst} = {keep}"
        yield f"{ind}do"
        yield f"{ind}  local {x}"
        for t in e.terms:
            yield from _emit(g, t, x, ind + "  ")
            yield f"{ind}  if {x} == {stop} then {dst} = {stop} goto {end} end"
            yield f"{ind}  if {x} == nil then {dst} = nil end"
        yield f"{ind}end"
        yield f"{ind}::{end}::"
    elif isinstance(e, PNot):
        x = g.fresh("x")
        yield f"{ind}do"
        yield f"{ind}  local {x}"
        yield from _emit(g, e.expr, x, ind + "  ")
        yield f"{ind}  if {x} == nil then {dst} = nil else {dst} = not {x} end"
        yield f"{ind}end"
    elif isinstance(e, PUser):
        yield from _emit_user(g, e, dst, ind)
    else:
        yield from _emit_leaf(g, e, dst, ind)


def _emit_leaf(g: _Gen, e: PCompare | PIn | PWildcard | PAffix, dst: str, ind: str) -> Iterator[str]:
    v = g.fresh("v")
    kinds = g.kinds(e.col)
    yield f"{ind}local {v} = {g.col(e.col)}[i]"
    if isinstance(e, PCompare):
        if e.op not in COMPARE_OPS:
            raise PolicyCompileError(f"lua: unknown comparison {e.op!r}")
        if isinstance(e.value, str):
            mixed = bool(kinds - {"str"})
            guard = f'type({v}) ~= "string"' if mixed else f"{v} == nil"
            test = f"{v} {_LUA_OPS[e.op]} {_lua_str(e.value)}"
        else:
            if "bool" in kinds:
                yield f"{ind}if {v} == true then {v} = 1 elseif {v} == false then {v} = 0 end"
            mixed = bool(kinds - {"int", "float", "bool"})
            guard = f'type({v}) ~= "number"' if mixed else f"{v} == nil"
            test = _num_compare(v, e.op, e.value)
        if e.op in ("==", "!="):
            # null (and a value of another type) is unequal to every literal
            unequal = "false" if e.op == "==" else "true"
            yield f"{ind}if {guard} then {dst} = {unequal} else {dst} = {test} end"
        elif mixed:
            # ordering: null gives null; a value of another type is not ordered before or after
            yield f"{ind}if {v} == nil then {dst} = nil elseif {guard} then {dst} = false"
            yield f"{ind}else {dst} = {test} end"
        else:
            yield f"{ind}if {v} == nil then {dst} = nil else {dst} = {test} end"
    elif isinstance(e, PIn):
        yield from _emit_in(g, e, v, kinds, dst, ind)
    else:
        guard = f'type({v}) ~= "string"' if kinds - {"str"} else f"{v} == nil"
        s = v
        yield f"{ind}if {guard} then {dst} = nil else"
        if e.case_insensitive:
            s = g.fresh("s")
            yield f"{ind}  local {s} = lower({v})"
        if isinstance(e, PWildcard):
            tests = [_wildcard_test(g, s, p, e.case_insensitive) for p in e.patterns] or ["false"]
            yield f"{ind}  {dst} = {' or '.join(tests)}"
        else:
            yield f"{ind}  {dst} = {_affix_test(s, e)}"
        yield f"{ind}end"


def _emit_in(g: _Gen, e: PIn, v: str, kinds: frozenset[str], dst: str, ind: str) -> Iterator[str]:
    keys: list[str] = []
    strings = all(isinstance(x, str) for x in e.values)
    for x in e.values:
        if isinstance(x, str):
            keys.append(_lua_str(x.translate(_ASCII_FOLD) if e.case_insensitive else x))
        else:
            f, exact = _as_double(x)
            if exact:  # a value no double equals is in no event
                keys.append(_lua_num(f))
    table = g.const("{" + ", ".join(f"[{k}] = true" for k in keys) + "}")
    hit, miss = ("false", "true") if e.negated else ("true", "false")
    if strings:
        probe = f"lower({v})" if e.case_insensitive else v
        guard = f'type({v}) ~= "string"' if kinds - {"str"} else f"{v} == nil"
    else:
        if "bool" in kinds:
            yield f"{ind}if {v} == true then {v} = 1 elseif {v} == false then {v} = 0 end"
        probe = v
        guard = f'type({v}) ~= "number"' if kinds - {"int", "float", "bool"} else f"{v} == nil"
    yield f"{ind}if {guard} or {table}[{probe}] == nil then {dst} = {miss} else {dst} = {hit} end"


def _affix_test(s: str, e: PAffix) -> str:
    lit = e.value.translate(_ASCII_FOLD) if e.case_insensitive else e.value
    size = len(lit.encode("utf-8"))
    if e.kind == "startswith":
        return "true" if size == 0 else f"sub({s}, 1, {size}) == {_lua_str(lit)}"
    if e.kind == "endswith":
        return "true" if size == 0 else f"sub({s}, -{size}) == {_lua_str(lit)}"
    if e.kind == "contains":
        return "false" if size == 0 else f"find({s}, {_lua_str(lit)}, 1, true) ~= nil"
    raise PolicyCompileError(f"lua: unknown affix test {e.kind!r}")


def _wildcard_test(g: _Gen, s: str, pattern: str, ci: bool) -> str:
    """Return a Lua expression: string ``s`` matches the EQL wildcard ``pattern`` whole."""
    if ci:
        pattern = pattern.translate(_ASCII_FOLD)
    if "?" not in pattern:
        parts = pattern.split("*")
        if len(parts) == 1:
            return f"{s} == {_lua_str(pattern)}"
        first, last, mids = parts[0], parts[-1], [p for p in parts[1:-1] if p]
        if not first and not last and not mids:
            return "true"
        if not first and not last and len(mids) == 1:
            return f"find({s}, {_lua_str(mids[0])}, 1, true) ~= nil"
        if not mids:
            tests = []
            a, b = len(first.encode("utf-8")), len(last.encode("utf-8"))
            if first and last:
                tests.append(f"#{s} >= {a + b}")
            if first:
                tests.append(f"sub({s}, 1, {a}) == {_lua_str(first)}")
            if last:
                tests.append(f"sub({s}, -{b}) == {_lua_str(last)}")
            return "(" + " and ".join(tests) + ")"
    chunks = _wildcard_chunks(pattern)
    lua_chunks = ", ".join(
        "{" + ", ".join(_lua_str(it) if isinstance(it, str) else str(it) for it in items) + "}"
        for items in chunks
    )
    return f"glob({s}, {g.const('{' + lua_chunks + '}')})"


def _emit_user(g: _Gen, e: PUser, dst: str, ind: str) -> Iterator[str]:
    if e.lang != "lua":
        raise PolicyCompileError(f"lua: the Lua runtime cannot call {e.lang}:{e.function}")
    if e.op is not None and e.op not in COMPARE_OPS:
        raise PolicyCompileError(f"lua: unknown comparison {e.op!r} after lua:{e.function}")
    if e.function not in g.users:
        g.users[e.function] = len(g.users)
    fn = g.const(f"U[{_lua_str(e.function)}]")
    args: list[str] = []
    for kind, value in e.args:
        if kind == "col":
            if not isinstance(value, int) or isinstance(value, bool):
                raise PolicyCompileError(f"lua: lua:{e.function} argument column {value!r} is not an index")
            args.append(f"{g.col(value)}[i]")
        elif kind == "lit":
            args.append(_lua_literal(value))
        else:
            raise PolicyCompileError(f"lua: lua:{e.function} has an argument of kind {kind!r}")
    r = g.fresh("r")
    yield f"{ind}local {r} = {fn}({', '.join(args)})"
    if e.op is None:
        yield f'{ind}if type({r}) == "boolean" then {dst} = {r} else {dst} = nil end'
    elif e.value is None or isinstance(e.value, bool):
        yield f"{ind}{dst} = nil"
    else:
        test = _num_compare(r, e.op, e.value)
        yield f'{ind}if type({r}) == "number" then {dst} = {test} else {dst} = nil end'


def _has_user(e: PExpr) -> bool:
    if isinstance(e, PUser):
        return True
    if isinstance(e, PAnd | POr):
        return any(_has_user(t) for t in e.terms)
    if isinstance(e, PNot):
        return _has_user(e.expr)
    return False


def generate(
    expr: PExpr, columns: Sequence[ColumnSpec], host_count: int, name: str = "pred"
) -> tuple[str, list[str]]:
    """Return the Lua source of a predicate factory for ``expr``, and the user functions it calls.

    The chunk is called with the kernel's helpers and the user functions, and returns
    ``run(n, columns..., host columns...)`` giving the hex bitmap of the events that are True.
    """
    g = _Gen(columns, host_count)
    body = list(_emit(g, expr, "r", "    "))
    slots = len(columns) + host_count
    names = [f"c{k + 1}" for k in range(len(columns))] + [f"h{k + 1}" for k in range(host_count)]
    if slots > _MAX_NAMED:
        params = "  local A = {...}\n  local " + ", ".join(names[:_MAX_NAMED]) + " = ...\n"
    elif slots:
        params = "  local " + ", ".join(names) + " = ...\n"
    else:
        params = ""
    consts = "".join(f"local k{k} = K[{k}]\n" for k in range(1, min(len(g.consts), _MAX_NAMED) + 1))
    lines = [
        f"-- predicate {' '.join(name.split())}: generated from the lowered condition; reads only its locals",
        "local H, U = ...",
        "local byte, sub, find, lower, type = H.byte, H.sub, H.find, H.lower, H.type",
        "local concat, tohex, glob, huge, ceil = H.concat, H.tohex, H.glob, H.huge, H.ceil",
        "local K = {" + ", ".join(g.consts) + "}",
        consts.rstrip("\n"),
        "return function(n, ...)",
        params.rstrip("\n"),
        "  local out, w, word, bitv = {}, ceil(n / 32), 0, 1",
        "  for i = 1, n do",
        "    local r",
        *body,
        "    if r == true then word = word + bitv end",
        "    if bitv == 2147483648 then",
        "      out[w] = tohex(word); w = w - 1; word = 0; bitv = 1",
        "    else",
        "      bitv = bitv * 2",
        "    end",
        "  end",
        "  if bitv ~= 1 then out[w] = tohex(word) end",
        "  return concat(out)",
        "end",
    ]
    return "\n".join(line for line in lines if line) + "\n", list(g.users)


def _refuse_attributes(obj: object, name: object, is_setting: bool) -> object:
    """Refuse every Python attribute access from Lua (no Python object is ever handed to Lua)."""
    raise AttributeError(f"lua: no Python attribute is reachable ({name!r})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LuaBatch:
    """A condition compiled to Lua, with its own LuaJIT runtime; implements ``abi.CompiledBatch``."""

    def __init__(
        self,
        expr: PExpr,
        columns: Sequence[ColumnSpec],
        host_count: int,
        budget: Budget,
        modules: Sequence[UserModule],
        name: str,
    ) -> None:
        self.source, called = generate(expr, columns, host_count, name)
        self.budget = budget
        self.hook_chunk = HOOK_CHUNK
        self._ncols = len(columns)
        self._nhost = host_count
        self._armed = _has_user(expr)
        self._rt = lj.LuaRuntime(
            max_memory=budget.memory_bytes,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_refuse_attributes,
            unpack_returned_tuples=True,
        )
        kernel = self._rt.execute(_KERNEL, name="=kernel")
        self._arm_hook: Callable[[int, int], None] = kernel["arm"]
        self._spent: Callable[[], bool] = kernel["spent"]
        self._sethook: Callable[[], None] = kernel["sethook"]
        users = self._load_modules(kernel["load_module"], modules, called) if self._armed else {}
        try:
            factory = self._rt.compile(self.source, name=f"={name}")
        except lj.LuaError as exc:
            raise PolicyCompileError(
                f"lua: the generated predicate {name} does not load: {_first_line(exc)}"
            ) from exc
        self._run: Callable[..., str] = factory(kernel["H"], self._rt.table_from(users))

    def _load_modules(
        self, load_module: Callable[[bytes, bytes], Any], modules: Sequence[UserModule], called: Sequence[str]
    ) -> dict[str, Any]:
        """Run each Lua module once in its sandbox; return the functions the predicate calls."""
        lua_modules = [m for m in modules if m.lang == "lua"]
        owner: dict[str, UserModule] = {}
        found: dict[str, Any] = {}
        for module in lua_modules:
            where = str(module.path)
            try:
                exported = self._guarded(load_module, module.source, ("@" + where).encode("utf-8"))
            except PredicateTrap as trap:
                raise PolicyError(
                    f"{where}: lua module failed while loading ({trap.kind}): {trap.detail}"
                ) from None
            if isinstance(exported, tuple):  # (nil, syntax error message)
                raise PolicyError(f"{where}: lua module does not compile: {exported[1]}")
            for fname, fn in exported.items():
                if fname in owner:
                    raise PolicyError(
                        f"{where}: lua function {fname!r} is also defined by {owner[fname].path}"
                    )
                owner[fname], found[fname] = module, fn
        for fname in called:
            if fname not in found:
                where = ", ".join(str(m.path) for m in lua_modules) or "no .lua module beside the policy"
                raise PolicyError(f"{where}: no lua function {fname!r} is defined (called as lua:{fname})")
        return {fname: found[fname] for fname in called}

    def _arm(self, instructions: int) -> None:
        self._arm_hook(max(1, instructions), max(1, min(self.hook_chunk, 2**31 - 1)))

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call Lua under the instruction and memory budget; map a failure to a PredicateTrap."""
        rt = self._rt
        rt.set_max_memory(rt.get_memory_used() + self.budget.memory_bytes)
        try:
            self._arm(self.budget.for_batch(1))
            return fn(*args)
        except lj.LuaError as exc:
            raise self._trap(exc) from None
        finally:
            self._sethook()

    def _trap(self, exc: lj.LuaError) -> PredicateTrap:
        """Classify a Lua failure, and make the runtime usable again."""
        self._sethook()  # a C function: no Lua instruction runs before the hook is gone
        fuel = self._spent()
        self._rt.set_max_memory(0)
        self._rt.gccollect()
        detail = _first_line(exc)
        if isinstance(exc, lj.LuaMemoryError):
            return PredicateTrap("memory", f"over the {self.budget.memory_bytes}-byte memory budget")
        if fuel:
            return PredicateTrap("fuel", "instruction budget exhausted")
        if "stack overflow" in detail:
            return PredicateTrap("stack", detail)
        return PredicateTrap("error", detail)

    def memory_in_use(self) -> int:
        """Return the bytes the runtime holds now (beyond the bare LuaJIT state)."""
        return int(self._rt.get_memory_used() or 0)

    def run(self, columns: Sequence[Sequence[NativeValue]], host: Sequence[HostColumn], n: int) -> int:
        """Decide ``n`` events in one Lua call; return the bitmask of the events that are True."""
        if n <= 0:
            return 0
        if len(columns) != self._ncols or len(host) != self._nhost:
            raise ValueError(
                f"lua: {len(columns)} columns and {len(host)} host columns for a predicate "
                f"compiled for {self._ncols} and {self._nhost}"
            )
        rt = self._rt
        rt.set_max_memory(0)  # the batch itself is host data, not spent by the predicate
        tf = rt.table_from
        args = [tf(c) for c in columns]
        args += [tf(h) for h in host]
        rt.set_max_memory(rt.get_memory_used() + self.budget.memory_bytes)
        try:
            if self._armed:
                self._arm(self.budget.for_batch(n))
            hexbits = self._run(n, *args)
        except lj.LuaError as exc:
            raise self._trap(exc) from None
        finally:
            if self._armed:
                self._sethook()
        return int(hexbits, 16) if hexbits else 0


class LuaBackend:
    """The LuaJIT predicate runtime (``abi.Backend``)."""

    name = "lua"
    int_bits = 53

    def compile(
        self,
        expr: PExpr,
        columns: Sequence[ColumnSpec],
        host_count: int,
        *,
        budget: Budget,
        modules: Sequence[UserModule] = (),
        name: str = "pred",
    ) -> LuaBatch:
        """Compile a lowered condition; raise ``PolicyError`` naming the module for a bad user module."""
        return LuaBatch(expr, columns, host_count, budget, modules, name)
