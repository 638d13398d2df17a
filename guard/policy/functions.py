"""The EQL function library, with Elasticsearch's semantics.

Semantics are those of Elasticsearch's EQL processors (``x-pack/plugin/eql``: ``*FunctionProcessor``,
``StringUtils``, ``CIDRUtils``, QL ``Arithmetics``), checked against Elastic's EQL spec corpus:

- **Names** are case-insensitive (``EqlFunctionRegistry.normalize`` lower-cases them): ``startswith``,
  ``STARTSWITH`` and ``startsWith`` are the same function. Only ``between``, ``endsWith``, ``indexOf``,
  ``startsWith`` and ``stringContains`` (and the legacy ``wildcard``) have a ``name~(...)`` form.
- **Nulls**: a null source makes every function null. ``concat`` is null if any argument is null;
  ``endsWith``/``startsWith``/``indexOf`` are null for a null substring; ``indexOf`` treats a null start as
  0 and ``substring`` returns the source for a null start and the rest of the string for a null end;
  ``number`` uses its default base for a null base. Where Elasticsearch's processor raises instead (a null
  ``between`` bound or greedy flag, a null ``stringContains`` substring, a null CIDR), so does this module.
- **Errors**: Elasticsearch raises on arguments of the wrong kind (``A string/char is required``), on
  strings ``number`` cannot parse, on invalid IPs/CIDRs, on integer division by zero and on ``long``
  overflow; these raise :class:`FunctionError` (a :class:`ValueError`), never return null.
- **Numbers**: integers are Java ``long`` (64-bit): ``divide`` of two integers truncates toward zero,
  ``modulo`` takes the sign of the dividend, overflow raises; any float operand makes the operation
  ``double`` (division by ``0.0`` gives infinity/NaN). ``string``/``concat`` format numbers and booleans as
  Java does (``1.0E10``, ``true``).
- **Strings** are measured and indexed in UTF-16 code units, as Java does (``length("😀") == 2``).
  Case-insensitive variants lower-case both sides.
- **Multi-valued arguments** (lists): Elasticsearch evaluates a script filter once per value of each
  multi-valued field (``InternalEqlScriptUtils.multiValueDocValues``) and keeps the event when any
  evaluation holds; a missing or empty field is one null evaluation. :func:`call` (and every
  ``FunctionSpec.impl``) therefore evaluates element-wise over the cartesian product of the values (nulls
  in a list are skipped, an empty list is null, nested lists are flattened, duplicates are dropped) and
  returns the list of results, or a single result when there is only one combination. Comparisons and
  boolean tests over such a list match when any element does.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Final

from guard.policy.semantics import Value, non_null
from guard.policy.wildcard import wildcard_match

__all__ = [
    "FUNCTIONS",
    "LEGACY_FUNCTIONS",
    "FunctionError",
    "FunctionSpec",
    "call",
    "java_string",
    "lookup",
    "validate",
]

Impl = Callable[[Sequence[Value], bool], Value]


class FunctionError(ValueError):
    """A function was applied to arguments Elasticsearch rejects at run time."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """The signature and implementation of one EQL function."""

    name: str
    min_args: int
    max_args: int | None
    case_insensitive_ok: bool
    arg_kinds: tuple[str, ...]
    returns: str
    impl: Impl


# --------------------------------------------------------------------------- Java helpers

_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1


def _java_double_str(d: float) -> str:
    """``Double.toString``: plain notation in [1e-3, 1e7), else ``d.dddE±n``; shortest round-trip digits."""
    if d != d:
        return "NaN"
    if d in (math.inf, -math.inf):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0.0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    a = abs(d)
    if 1e-3 <= a < 1e7:
        return repr(d)  # Python's repr is positional in this range and always has a fraction digit
    _, digits, exp = Decimal(repr(a)).as_tuple()
    if not isinstance(exp, int):  # pragma: no cover - a finite float always has an integer exponent
        return repr(d)
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    exp10 = len(digits) + exp - 1
    if len(ds) == 1:
        # When one digit suffices Java considers two-digit decimals too and prints the one nearest the exact
        # value (Double.MIN_VALUE is 4.9E-324, not 5.0E-324; 1e-323 is 9.9E-324).
        exact = Decimal(a)
        e2 = exact.adjusted()
        two = exact.scaleb(-e2).quantize(Decimal("0.1"))
        if two >= 10:
            two, e2 = two / 10, e2 + 1
        if float(two.scaleb(e2)) == a:
            ds, exp10 = str(two).replace(".", "").rstrip("0") or "0", e2
    return f"{'-' if d < 0 else ''}{ds[0]}.{ds[1:] or '0'}E{exp10}"


def java_string(v: Value) -> str:
    """Render a value as Java's ``toString`` does (``1.0E10``, ``true``; ``"null"`` for null)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is float:
        return _java_double_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(java_string(x) for x in v) + "]"
    return str(v)


def _java_int(n: int | float) -> int:
    """``Number.intValue()``: wrap a long to 32 bits; truncate and saturate a double (NaN is 0)."""
    if type(n) is float:
        if n != n:
            return 0
        if n >= _INT_MAX:
            return _INT_MAX
        if n <= _INT_MIN:
            return _INT_MIN
        return int(n)
    i = int(n) & 0xFFFFFFFF
    return i - (1 << 32) if i > _INT_MAX else i


def _wrap_long(n: int) -> int:
    n &= 0xFFFFFFFFFFFFFFFF
    return n - (1 << 64) if n > _LONG_MAX else n


def _need_str(v: Value) -> str:
    if isinstance(v, str):
        return v
    raise FunctionError(f"A string/char is required; received [{java_string(v)}]")


def _need_number(v: Value) -> int | float:
    if type(v) is int or type(v) is float:
        return v
    raise FunctionError(f"A number is required; received [{java_string(v)}]")


def _need_bool(v: Value) -> bool:
    if isinstance(v, bool):
        return v
    raise FunctionError(f"A boolean is required; received [{java_string(v)}]")


# UTF-16 views: Java indexes strings by UTF-16 code unit, Python by code point. A string without characters
# beyond U+FFFF is its own view; otherwise each astral character becomes its surrogate pair.


_NATIVE_UTF16: Final = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def _u16(s: str) -> str:
    if s.isascii():
        return s
    b = s.encode(_NATIVE_UTF16, "surrogatepass")
    if len(b) == 2 * len(s):
        return s
    return "".join(map(chr, memoryview(b).cast("H")))


def _from_u16(s: str) -> str:
    if s.isascii():
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _u16_len(s: str) -> int:
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


# --------------------------------------------------------------------------- string functions


def _between(args: Sequence[Value], ci: bool) -> Value:
    source = args[0]
    if source is None:
        return None
    s = _need_str(source)
    left = _need_str(args[1])
    right = _need_str(args[2])
    greedy = _need_bool(args[3] if len(args) > 3 else False)
    if not s or not left or not right:
        return s
    hay, lft, rgt = (s.lower(), left.lower(), right.lower()) if ci else (s, left, right)
    hay, lft, rgt, src = _u16(hay), _u16(lft), _u16(rgt), _u16(s)
    idx = hay.find(lft)
    if idx < 0:
        return ""
    start = idx + len(lft)
    end = hay.rfind(rgt) if greedy else hay.find(rgt, start)
    if end < 0:
        return ""
    if end < start or end > len(src):
        # Java's String.substring throws StringIndexOutOfBoundsException here (greedy, right before left).
        raise FunctionError(f"begin {start}, end {end}, length {len(src)}")
    return _from_u16(src[start:end])


def _affix_test(prefix: bool) -> Callable[[Sequence[Value], bool], Value]:
    """Build startsWith (prefix) or endsWith: null for a null source or pattern."""

    def test(args: Sequence[Value], ci: bool) -> Value:
        source, pattern = args[0], args[1]
        if source is None:
            return None
        s = _need_str(source)
        if pattern is None:
            return None
        p = _need_str(pattern)
        if ci:
            s, p = s.lower(), p.lower()
        return s.startswith(p) if prefix else s.endswith(p)

    return test


_ends_with = _affix_test(prefix=False)
_starts_with = _affix_test(prefix=True)


def _string_contains(args: Sequence[Value], ci: bool) -> Value:
    source = args[0]
    if source is None:
        return None
    s = _need_str(source)
    sub = _need_str(args[1])
    if not s or not sub:
        return False
    return sub.lower() in s.lower() if ci else sub in s


def _index_of(args: Sequence[Value], ci: bool) -> Value:
    source, substring = args[0], args[1]
    start = args[2] if len(args) > 2 else None
    if source is None:
        return None
    s = _need_str(source)
    if substring is None:
        return None
    sub = _need_str(substring)
    begin = 0 if start is None else _java_int(_need_number(start))
    if ci:
        s, sub = s.lower(), sub.lower()
    s, sub = _u16(s), _u16(sub)
    # Java's indexOf clamps the start to [0, length]; an empty substring is then found at the start.
    begin = min(max(begin, 0), len(s))
    found = s.find(sub, begin)
    return None if found < 0 else found


def _length(args: Sequence[Value], ci: bool) -> Value:
    source = args[0]
    if source is None:
        return None
    return _u16_len(_need_str(source))


def _substring(args: Sequence[Value], ci: bool) -> Value:
    source, start = args[0], args[1]
    end = args[2] if len(args) > 2 else None
    if source is None:
        return None
    s = _need_str(source)
    if start is None:
        return s
    begin = _java_int(_need_number(start))
    stop_arg = None if end is None else _java_int(_need_number(end))
    if not s:
        return s
    view = _u16(s)
    n = len(view)
    stop = n if stop_arg is None else stop_arg
    # Python slice semantics, as StringUtils.substringSlice implements them.
    if begin < 0:
        begin = max(begin + n, 0)
    if stop < 0:
        stop = max(stop + n, 0)
    stop = min(stop, n)
    if begin >= stop:
        return ""
    return view[begin:stop] if view is s else _from_u16(view[begin:stop])


def _concat(args: Sequence[Value], ci: bool) -> Value:
    parts: list[str] = []
    for v in args:
        if v is None:
            return None
        parts.append(v if isinstance(v, str) else java_string(v))
    return "".join(parts)


def _to_string(args: Sequence[Value], ci: bool) -> Value:
    v = args[0]
    if v is None:
        return None
    return v if isinstance(v, str) else java_string(v)


def _wildcard(args: Sequence[Value], ci: bool) -> Value:
    source = args[0]
    patterns = [_need_str(p) for p in args[1:]]
    if source is None:
        return None
    s = _need_str(source)
    return any(wildcard_match(s, p, case_insensitive=ci) for p in patterns)


# --------------------------------------------------------------------------- number()


class _NumberFormatError(Exception):
    pass


def _java_digit(c: str, radix: int) -> int:
    """``Character.digit``: ASCII and fullwidth letters, and any Unicode decimal digit."""
    o = ord(c)
    if 48 <= o <= 57:
        d = o - 48
    elif 97 <= o <= 122 or 0xFF41 <= o <= 0xFF5A:
        d = (o - 97 if o <= 122 else o - 0xFF41) + 10
    elif 65 <= o <= 90 or 0xFF21 <= o <= 0xFF3A:
        d = (o - 65 if o <= 90 else o - 0xFF21) + 10
    else:
        d = unicodedata.decimal(c, -1)
    return d if 0 <= d < radix else -1


def _parse_long(s: str, radix: int) -> int:
    """``Long.parseLong(s, radix)``."""
    if not 2 <= radix <= 36 or not s:
        raise _NumberFormatError
    negative = s[0] == "-"
    body = s[1:] if s[0] in "+-" else s
    if not body:
        raise _NumberFormatError
    n = 0
    for c in body:
        d = _java_digit(c, radix)
        if d < 0 or n > _LONG_MAX:  # past a long already: Java throws too (stops a quadratic bigint)
            raise _NumberFormatError
        n = n * radix + d
    if negative:
        n = -n
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise _NumberFormatError
    return n


# the digit runs are atomic: "[0-9]+\.?[0-9]*" would split a run of digits every way before failing
# (quadratic in the value's length); the language is the same
_JAVA_DECIMAL: Final = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:(?>[0-9]+)(?:\.(?>[0-9]*))?|\.(?>[0-9]+))(?:[eE][+-]?(?>[0-9]+))?[fFdD]?)",
    re.ASCII,
)
_JAVA_HEX_FLOAT: Final = re.compile(
    r"([+-]?0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?", re.ASCII
)


def _parse_double(s: str) -> float:
    """``Double.valueOf(s)``: Java-trimmed, optional sign, decimal or hex-float, optional f/d suffix."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    t = s[i:j]
    if _JAVA_DECIMAL.fullmatch(t):
        if t[-1] in "fFdD":
            t = t[:-1]
        return float(t.replace("Infinity", "inf"))
    m = _JAVA_HEX_FLOAT.fullmatch(t)
    if m:
        return float.fromhex(m.group(1))
    raise _NumberFormatError


def _to_number(args: Sequence[Value], ci: bool) -> Value:
    value = args[0]
    base = args[1] if len(args) > 1 else None
    if value is None:
        return None
    text = _need_str(value)
    hex_prefix = text.startswith("0x")
    if base is None:
        radix = 16 if hex_prefix else 10
    elif type(base) is int and _INT_MIN <= base <= _INT_MAX:
        radix = base
    else:
        raise FunctionError(f"An integer base is required; received [{java_string(base)}]")
    if hex_prefix and radix == 16:
        text = text[2:]
    try:
        if radix == 10:
            try:
                return _parse_long(text, 10)
            except _NumberFormatError:
                return _parse_double(text)
        return _parse_long(text, radix)
    except _NumberFormatError:
        raise FunctionError(f"Unable to convert [{text}] to number of base [{radix}]") from None


# --------------------------------------------------------------------------- cidrMatch()


def _bad_ip(text: str) -> FunctionError:
    return FunctionError(f"'{text}' is not an IP string literal.")


@lru_cache(maxsize=8192)
def _ip_int(text: str) -> tuple[int, int]:
    """Parse an address to (128-bit value in the IPv4-mapped space, address length in bytes)."""
    if ":" in text:
        try:
            v6 = ipaddress.IPv6Address(text)
        except ValueError:
            raise _bad_ip(text) from None
        if v6.ipv4_mapped is not None:  # Java hands IPv4-mapped IPv6 addresses back as IPv4
            return int(v6), 4
        return int(v6), 16
    try:
        v4 = ipaddress.IPv4Address(text)
    except ValueError:
        raise _bad_ip(text) from None
    return 0xFFFF_0000_0000 | int(v4), 4


_PREFIX: Final = re.compile(r"[+-]?\d+")


@lru_cache(maxsize=4096)
def _cidr_range(cidr: str) -> tuple[int, int]:
    if "/" not in cidr:
        addr, _ = _ip_int(cidr)
        return addr, addr
    fields = cidr.split("/")
    while fields and not fields[-1]:  # Java's String.split drops trailing empty strings
        fields.pop()
    if len(fields) != 2:
        raise FunctionError(f"Expected [ip/prefix] but was [{cidr}]")
    text, prefix_text = fields
    addr, size = _ip_int(text)
    if ":" in text and size == 4:
        raise FunctionError(
            f"CIDR notation is not allowed with IPv6-mapped IPv4 address [{text} as it introduces "
            "ambiguity as to whether the prefix length should be interpreted as a v4 prefix length or a "
            "v6 prefix length"
        )
    if not _PREFIX.fullmatch(prefix_text):
        raise FunctionError(f'For input string: "{prefix_text}"')
    prefix = int(prefix_text)
    if not 0 <= prefix <= 8 * size:
        raise FunctionError(
            f"Illegal prefix length [{prefix}] in [{cidr}]. "
            "Must be 0-32 for IPv4 ranges, 0-128 for IPv6 ranges"
        )
    host_bits = 8 * size - prefix
    mask = (1 << host_bits) - 1
    return addr & ~mask, addr | mask


def _cidr_match(args: Sequence[Value], ci: bool) -> Value:
    source = args[0]
    if source is None:
        return None
    s = _need_str(source)
    cidrs = [_need_str(c) for c in args[1:]]
    addr, _ = _ip_int(s)
    for cidr in cidrs:
        lo, hi = _cidr_range(cidr)
        if lo <= addr <= hi:
            return True
    return False


# --------------------------------------------------------------------------- arithmetic


def _arith_args(args: Sequence[Value]) -> tuple[int | float, int | float] | None:
    left, right = args[0], args[1]
    if left is None or right is None:
        return None
    return _need_number(left), _need_number(right)


def _exact(n: int) -> int:
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise FunctionError("long overflow")
    return n


def _float(n: int | float) -> float:
    try:
        return float(n)
    except OverflowError:
        raise FunctionError(f"A number is required; received [{n}]") from None


def _add(args: Sequence[Value], ci: bool) -> Value:
    ab = _arith_args(args)
    if ab is None:
        return None
    a, b = ab
    if type(a) is int and type(b) is int:
        return _exact(a + b)
    return _float(a) + _float(b)


def _subtract(args: Sequence[Value], ci: bool) -> Value:
    ab = _arith_args(args)
    if ab is None:
        return None
    a, b = ab
    if type(a) is int and type(b) is int:
        return _exact(a - b)
    return _float(a) - _float(b)


def _multiply(args: Sequence[Value], ci: bool) -> Value:
    ab = _arith_args(args)
    if ab is None:
        return None
    a, b = ab
    if type(a) is int and type(b) is int:
        return _exact(a * b)
    return _float(a) * _float(b)


def _divide(args: Sequence[Value], ci: bool) -> Value:
    ab = _arith_args(args)
    if ab is None:
        return None
    a, b = ab
    if type(a) is int and type(b) is int:
        if b == 0:
            raise FunctionError("/ by zero")
        q = abs(a) // abs(b)
        return _wrap_long(-q if (a < 0) != (b < 0) else q)
    x, y = _float(a), _float(b)
    if y == 0.0:
        if x != x or x == 0.0:
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _modulo(args: Sequence[Value], ci: bool) -> Value:
    ab = _arith_args(args)
    if ab is None:
        return None
    a, b = ab
    if type(a) is int and type(b) is int:
        if b == 0:
            raise FunctionError("/ by zero")
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    x, y = _float(a), _float(b)
    if y == 0.0 or math.isinf(x) or x != x or y != y:
        return math.nan
    return math.fmod(x, y)


# --------------------------------------------------------------------------- multi-valued arguments


def _values(arg: Value) -> list[Value]:
    if not isinstance(arg, list):
        return [arg]
    flat = list(non_null(arg))
    if not flat:
        return [None]
    unique: dict[tuple[type, Value], Value] = {}
    for x in flat:
        unique.setdefault((type(x), x), x)
    return list(unique.values())


def _multi_valued(fn: Impl) -> Impl:
    def impl(args: Sequence[Value], case_insensitive: bool) -> Value:
        for a in args:
            if isinstance(a, list):
                break
        else:
            return fn(args, case_insensitive)
        results: list[Value] = [
            fn(combo, case_insensitive) for combo in itertools.product(*(_values(a) for a in args))
        ]
        return results[0] if len(results) == 1 else results

    impl.__name__ = impl.__qualname__ = fn.__name__.lstrip("_")
    impl.__doc__ = fn.__doc__
    return impl


# --------------------------------------------------------------------------- registry


def _spec(
    name: str,
    min_args: int,
    max_args: int | None,
    ci_ok: bool,
    kinds: tuple[str, ...],
    returns: str,
    fn: Impl,
) -> FunctionSpec:
    return FunctionSpec(name, min_args, max_args, ci_ok, kinds, returns, _multi_valued(fn))


_NUM2: Final = ("number", "number")

_SPECS: Final = (
    _spec("add", 2, 2, False, _NUM2, "number", _add),
    _spec("between", 3, 4, True, ("string", "string", "string", "boolean"), "string", _between),
    _spec("cidrMatch", 2, None, False, ("ip", "string"), "boolean", _cidr_match),
    _spec("concat", 1, None, False, ("any",), "string", _concat),
    _spec("divide", 2, 2, False, _NUM2, "number", _divide),
    _spec("endsWith", 2, 2, True, ("string", "string"), "boolean", _ends_with),
    _spec("indexOf", 2, 3, True, ("string", "string", "number"), "number", _index_of),
    _spec("length", 1, 1, False, ("string",), "number", _length),
    _spec("modulo", 2, 2, False, _NUM2, "number", _modulo),
    _spec("multiply", 2, 2, False, _NUM2, "number", _multiply),
    _spec("number", 1, 2, False, ("string", "number"), "number", _to_number),
    _spec("startsWith", 2, 2, True, ("string", "string"), "boolean", _starts_with),
    _spec("string", 1, 1, False, ("any",), "string", _to_string),
    _spec("stringContains", 2, 2, True, ("string", "string"), "boolean", _string_contains),
    _spec("substring", 2, 3, False, ("string", "number", "number"), "string", _substring),
    _spec("subtract", 2, 2, False, _NUM2, "number", _subtract),
    _spec("wildcard", 2, None, True, ("string", "string"), "boolean", _wildcard),
)

FUNCTIONS: Final[Mapping[str, FunctionSpec]] = MappingProxyType({s.name.lower(): s for s in _SPECS})
"""Every function, keyed by lower-cased name."""

LEGACY_FUNCTIONS: Final = frozenset({"wildcard"})
"""Functions current Elasticsearch no longer has (``wildcard`` gave way to ``like``/``:``)."""


def lookup(name: str) -> FunctionSpec | None:
    """Return the function called ``name`` (names are case-insensitive, as in Elasticsearch), or None."""
    return FUNCTIONS.get(name.lower())


def validate(name: str, arg_count: int, case_insensitive: bool = False) -> FunctionSpec:
    """Resolve a call's function and check its arity and ``~`` form; raise :class:`FunctionError` if wrong."""
    spec = lookup(name)
    if spec is None:
        raise FunctionError(f"Unknown function [{name}]")
    if arg_count < spec.min_args or (spec.max_args is not None and arg_count > spec.max_args):
        if spec.max_args is None:
            want = f"at least {spec.min_args}"
        elif spec.min_args == spec.max_args:
            want = f"exactly {spec.min_args}"
        else:
            want = f"{spec.min_args} to {spec.max_args}"
        raise FunctionError(f"error building [{spec.name}]: expects {want} argument(s), got {arg_count}")
    if case_insensitive and not spec.case_insensitive_ok:
        raise FunctionError(f"Function [{spec.name}] does not support case-(in)sensitivity")
    return spec


def call(name: str, args: Sequence[Value], case_insensitive: bool = False) -> Value:
    """Call function ``name`` on evaluated arguments (``name~(...)`` when ``case_insensitive``)."""
    return validate(name, len(args), case_insensitive).impl(args, case_insensitive)
