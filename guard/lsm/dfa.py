"""Compile path patterns into one byte-class DFA, laid out as the tables the BPF hooks walk.

The ``file_open`` and ``bprm_check_security`` hooks must answer "does this path contain one of
these literals or match one of these globs, and which is the first rule to match" with a bounded
loop over at most :data:`MAX_PATH` path bytes. This module compiles every pattern of every rule
into one deterministic automaton over byte classes, exposes it in the flat layout the BPF program
reads (:class:`DfaTables`), and walks the very same tables in Python (:meth:`DfaTables.walk`), so
user space and kernel agree by construction. :func:`reference_match` is the plain definition both
are tested against.

Semantics
---------
A :class:`Pattern` carries a rule id (u32, > 0; 0 means "no match" in the kernel). Several
patterns may share a rule id.

- ``contains``: the literal occurs anywhere in the path (Aho-Corasick semantics: many literals,
  one pass). The empty literal matches every path.
- ``glob``: the WHOLE path matches; ``*`` matches any run of bytes including ``/`` (EQL wildcard
  semantics), ``?`` exactly one byte, every other byte is literal (there is no escape character).
  :func:`prefix` and :func:`suffix` build ``lit*`` and ``*lit``.
- ``case_insensitive`` folds ASCII letters only (paths are bytes).

Paths are bytes; a ``str`` is encoded as UTF-8 (``surrogateescape``, so ``os.fsdecode`` output
round-trips). At most :data:`MAX_PATH` bytes are walked. A longer path is flagged ``over_long``
and its result is EXACTLY the result for ``path[:MAX_PATH]``: a literal lying wholly inside the
first 256 bytes matches, one that straddles byte 256 or lies beyond it does not, ``/tmp/*`` still
matches, and ``*.so`` matches when the truncated path ends in ``.so``. The caller decides what an
over-long path means; it is never silently treated as a full match or as a non-match.

Design: step ids, accept ids and two lanes
------------------------------------------
A DFA whose final state alone knew every matched rule would have to remember the SET of
``contains`` literals (and of ``P*M*`` globs) seen so far: n independent literals need 2**n
states, so the ~200-literal bench set cannot be built that way. Instead:

- A pattern that is decided as soon as some prefix of the path matches -- every ``contains``
  literal (``*lit*``) and every glob ending in ``*`` except ``*`` itself -- is reported
  Aho-Corasick style: the state ENTERED by the byte that completes it carries its rule id in
  ``step_first`` and the ``step_*`` lists. The walk reads ``step_first`` after every transition
  and keeps the smallest non-zero value; the automaton never has to remember the match.
- Every other glob is anchored at the end: it is read ONCE, from ``accept_first`` and the
  ``accept_*`` lists of the state the walk ends in.

A single automaton for unanchored patterns (contains, globs starting with ``*``) AND anchored
ones (globs starting with a byte or ``?``) is their product: every unanchored state is copied for
every anchored prefix context (``guardctl bench dfa --single-lane``: 57,695 states, 13 MB). So by
default the table holds two lanes that share the byte classes and every table: the walk follows
one state from ``start`` (the unanchored patterns) and one from ``anchored_start`` (the anchored
globs) in lock step, and the sizes add up instead of multiplying (4,472 states, 1 MB). Once the
anchored lane falls into ``dead`` (the path left every anchored glob's prefix) it costs nothing.
With ``compile_patterns(..., split_anchored=False)`` every pattern goes into the first lane and
``anchored_start == dead``: the single-automaton layout, walked by the same loop.

Table layout (the ABI with the BPF side)
----------------------------------------
All integers are u32 (``array('I')``; :meth:`DfaTables.to_bytes` writes them little-endian).
``S`` is ``num_states``, ``C`` is ``num_classes`` (1 <= C <= 256).

``byte_class``      256 bytes: the class (0 .. C-1) of each byte value.
``transitions``     ``S * C`` u32, row-major: ``next = transitions[state * C + byte_class[b]]``.
                    Every entry is < S, so every index the loop computes is in range.
``accept_first``    ``S`` u32: smallest rule id accepted if the walk ENDS in this state, 0 = none.
``accept_offsets``  ``S`` u32: index into ``accept_ids`` where this state's list starts.
``accept_ids``      0-terminated lists of rule ids, ascending (so the first entry is
                    ``accept_first``); index 0 holds the empty list shared by states without one.
``step_first``      ``S`` u32: smallest rule id completed on ENTERING this state, 0 = none.
``step_offsets``    ``S`` u32, and ``step_ids``: the same list layout for the step ids.

``start`` is always 0. ``anchored_start`` is the start of the anchored lane. ``dead`` always
exists: the non-accepting sink (every transition loops back, both ``*_first`` entries are 0), and
the state a lane sits in when it has no patterns. No start state carries a step id (the empty
literal and the glob ``*`` are accept ids), so reading ``step_first`` only after transitions loses
nothing. The loop the BPF program runs, and :meth:`DfaTables.walk` mirrors::

    u32 s = start, a = anchored_start, best = 0, h, c;
    for (i = 0; i < MAX_PATH && i < len; i++) {          /* len excludes the NUL */
        c = byte_class[path[i]];
        s = transitions[s * C + c];
        h = step_first[s];
        if (h && (!best || h < best)) best = h;
        if (a != dead) {                                  /* exact: dead is absorbing and silent */
            a = transitions[a * C + c];
            h = step_first[a];
            if (h && (!best || h < best)) best = h;
        }
    }
    h = accept_first[s];  if (h && (!best || h < best)) best = h;
    h = accept_first[a];  if (h && (!best || h < best)) best = h;
    /* best = the smallest matching rule id, 0 = no match; len > MAX_PATH = over-long */

``bpf_d_path`` counts the NUL in its return value, so walking paths of up to MAX_PATH bytes and
telling an over-long path apart needs a buffer of at least MAX_PATH + 1 bytes.
The kernel needs only ``byte_class``, ``transitions``, ``step_first``, ``accept_first`` and the
three scalars; user space recovers every matching id by walking the path through the lists.

Serialised form (:meth:`DfaTables.to_bytes`): ten little-endian u32 -- magic ``0x41464447``
(``b"GDFA"``), version, MAX_PATH, S, C, start, anchored_start, dead, ``len(accept_ids)``,
``len(step_ids)`` -- then ``byte_class`` (256 bytes) and, as little-endian u32, ``transitions``,
``accept_first``, ``accept_offsets``, ``accept_ids``, ``step_first``, ``step_offsets``,
``step_ids``, in that order, with no padding.

Construction
------------
Each pattern becomes a chain of positions (a position automaton: ``*lit`` for a contains
literal, the glob less its trailing ``*`` for a step glob, the glob itself otherwise; ``*`` is a
self-loop plus an epsilon move to the next position). A set of positions is one bit string, so
subset construction costs a few big-integer operations per transition. Bytes are first
partitioned into classes on which every position agrees; the subsets reachable from the lane
starts are built breadth-first (at most twice ``max_states`` of them, so an exploding glob set
fails in seconds instead of hanging); the whole table is minimised (Moore refinement from the
partition by step and accept id lists, abandoned as soon as it has more than ``max_states``
blocks), renumbered breadth-first from ``start``, and byte classes whose columns became equal
are merged. Duplicates and patterns implied by another of their rule that complete at the same
byte cost nothing; one implied but completed at a later byte (``/tmp/?*`` next to ``/tmp/*``)
reports its rule again there, a different step output, and may cost states.

Size: over 700 lines on purpose: the construction, the table layout the BPF walk reads and the
Python walk of those same tables stay in one module so that user space and kernel agree by
construction.
"""

from __future__ import annotations

import functools
import re
import struct
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from guard.errors import PolicyCompileError

__all__ = [
    "BLOB_MAGIC",
    "BLOB_VERSION",
    "DEFAULT_MAX_STATES",
    "MAX_PATH",
    "DfaTables",
    "Pattern",
    "PatternKind",
    "WalkResult",
    "compile_patterns",
    "contains",
    "glob",
    "prefix",
    "reference_match",
    "suffix",
]

MAX_PATH: Final = 256
DEFAULT_MAX_STATES: Final = 65536
BLOB_MAGIC: Final = 0x41464447
BLOB_VERSION: Final = 1

PatternKind = Literal["contains", "glob"]

_U32_MAX: Final = 0xFFFF_FFFF
_HEADER: Final = struct.Struct("<10I")
_STAR: Final = -1
_ANY: Final = (1 << 256) - 1
_SUBSET_FACTOR: Final = 2
_BLAME_SAMPLE: Final = 4096

if array("I").itemsize != 4:  # pragma: no cover - every Linux ABI the agent runs on has 4-byte ints
    raise ImportError("guard.lsm.dfa needs array('I') to hold 4-byte unsigned ints")


def _as_bytes(text: str | bytes, what: str) -> bytes:
    """Return *text* as bytes, encoding a str as UTF-8 with surrogateescape."""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogateescape")
    if isinstance(text, bytes | bytearray | memoryview):
        return bytes(text)
    raise TypeError(f"{what} must be str or bytes, not {type(text).__name__}")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One path pattern of one rule: a ``contains`` literal or an anchored ``glob``."""

    kind: PatternKind
    text: bytes
    rule_id: int
    case_insensitive: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("contains", "glob"):
            raise ValueError(f"pattern kind must be 'contains' or 'glob', not {self.kind!r}")
        if not isinstance(self.text, bytes):
            raise TypeError(f"pattern text must be bytes, not {type(self.text).__name__}")
        if isinstance(self.rule_id, bool) or not isinstance(self.rule_id, int):
            raise TypeError(f"rule id must be an int, not {type(self.rule_id).__name__}")
        if not 0 < self.rule_id <= _U32_MAX:
            raise ValueError(f"rule id must be in 1..{_U32_MAX} (0 means 'no match'), not {self.rule_id}")

    def __str__(self) -> str:
        text = self.text.decode("utf-8", "backslashreplace")
        fold = ", case-insensitive" if self.case_insensitive else ""
        return f"{self.kind} {text!r} (rule {self.rule_id}{fold})"


def contains(text: str | bytes, rule_id: int, *, case_insensitive: bool = False) -> Pattern:
    """Return a pattern matching every path that contains the literal *text*."""
    return Pattern("contains", _as_bytes(text, "contains text"), rule_id, case_insensitive)


def glob(text: str | bytes, rule_id: int, *, case_insensitive: bool = False) -> Pattern:
    """Return a pattern matching every path that wholly matches the glob *text* (``*`` spans ``/``)."""
    return Pattern("glob", _as_bytes(text, "glob text"), rule_id, case_insensitive)


def _affix_literal(text: str | bytes, what: str) -> bytes:
    """Return *text* as bytes, refusing the wildcard bytes a glob cannot escape."""
    data = _as_bytes(text, f"{what} text")
    if b"*" in data or b"?" in data:
        raise PolicyCompileError(
            f"{what} {data!r} contains '*' or '?': globs have no escape, so it cannot be compiled"
        )
    return data


def prefix(text: str | bytes, rule_id: int, *, case_insensitive: bool = False) -> Pattern:
    """Return the glob ``text*``: every path starting with the literal *text*."""
    return glob(_affix_literal(text, "prefix") + b"*", rule_id, case_insensitive=case_insensitive)


def suffix(text: str | bytes, rule_id: int, *, case_insensitive: bool = False) -> Pattern:
    """Return the glob ``*text``: every path ending with the literal *text*."""
    return glob(b"*" + _affix_literal(text, "suffix"), rule_id, case_insensitive=case_insensitive)


# --------------------------------------------------------------------------------------------
# Reference semantics


@functools.lru_cache(maxsize=4096)
def _glob_regex(text: bytes, case_insensitive: bool) -> re.Pattern[bytes]:
    """Translate a glob to an anchored-by-fullmatch regex (``*`` -> ``.*``, ``?`` -> ``.``)."""
    parts = [b".*" if ch == 0x2A else b"." if ch == 0x3F else re.escape(bytes((ch,))) for ch in text]
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.compile(b"".join(parts), flags)


def reference_match(
    patterns: Iterable[Pattern], path: str | bytes, *, limit: int | None = MAX_PATH
) -> frozenset[int]:
    """Return the ids of the rules whose pattern matches *path*, by the plain definition.

    ``contains`` is a substring test (both sides ASCII-lowered when case-insensitive) and ``glob``
    a ``re.fullmatch`` of the translated glob. Like the DFA walk, only the first *limit* bytes
    (:data:`MAX_PATH`) are considered; pass ``limit=None`` to test the whole path.
    """
    data = _as_bytes(path, "path")
    if limit is not None:
        data = data[:limit]
    lowered = data.lower()
    found: set[int] = set()
    for pat in patterns:
        if pat.kind == "contains":
            hit = pat.text.lower() in lowered if pat.case_insensitive else pat.text in data
        else:
            hit = _glob_regex(pat.text, pat.case_insensitive).fullmatch(data) is not None
        if hit:
            found.add(pat.rule_id)
    return frozenset(found)


# --------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True, slots=True)
class WalkResult:
    """What one walk of the tables found.

    ``rule_ids`` holds every matching rule; ``first`` is the smallest (what the kernel computes),
    0 when none matched; ``over_long`` says the path exceeded :data:`MAX_PATH` and only its first
    MAX_PATH bytes were walked; ``final_state`` and ``anchored_final_state`` are where the two
    lanes stopped.
    """

    rule_ids: frozenset[int]
    first: int
    over_long: bool
    final_state: int
    anchored_final_state: int


def _read_list(offsets: array[int], ids: array[int], state: int) -> list[int]:
    """Return the 0-terminated id list of *state*."""
    out: list[int] = []
    i = offsets[state]
    while ids[i]:
        out.append(ids[i])
        i += 1
    return out


@dataclass(frozen=True)
class DfaTables:
    """The compiled automaton in the exact flat layout the BPF program reads (see the module doc)."""

    num_states: int
    num_classes: int
    start: int
    anchored_start: int
    dead: int
    byte_class: bytes
    transitions: array[int]
    accept_first: array[int]
    accept_offsets: array[int]
    accept_ids: array[int]
    step_first: array[int]
    step_offsets: array[int]
    step_ids: array[int]

    def walk(self, path: str | bytes) -> WalkResult:
        """Walk the tables over *path* exactly as the BPF loop does and return what matched."""
        data = _as_bytes(path, "path")
        nc = self.num_classes
        trans = self.transitions
        classes = self.byte_class
        step_first = self.step_first
        dead = self.dead
        state = self.start
        anchored = self.anchored_start
        best = 0
        hit_states: set[int] = set()
        for byte in data[:MAX_PATH]:
            cls = classes[byte]
            state = trans[state * nc + cls]
            hit = step_first[state]
            if hit:
                hit_states.add(state)
                if not best or hit < best:
                    best = hit
            if anchored != dead:
                anchored = trans[anchored * nc + cls]
                hit = step_first[anchored]
                if hit:
                    hit_states.add(anchored)
                    if not best or hit < best:
                        best = hit
        ids: set[int] = set()
        for final in (state, anchored):
            accepted = self.accept_first[final]
            if accepted:
                if not best or accepted < best:
                    best = accepted
                ids.update(_read_list(self.accept_offsets, self.accept_ids, final))
        for hit_state in hit_states:
            ids.update(_read_list(self.step_offsets, self.step_ids, hit_state))
        return WalkResult(frozenset(ids), best, len(data) > MAX_PATH, state, anchored)

    def accept_list(self, state: int) -> list[int]:
        """Return every rule id accepted when a walk ends in *state*."""
        return _read_list(self.accept_offsets, self.accept_ids, state)

    def step_list(self, state: int) -> list[int]:
        """Return every rule id completed when a walk enters *state*."""
        return _read_list(self.step_offsets, self.step_ids, state)

    def describe(self) -> dict[str, Any]:
        """Return the shape of the automaton and the size in bytes of each table, for map sizing."""
        sizes = {
            "byte_class": len(self.byte_class),
            "transitions": len(self.transitions) * 4,
            "accept_first": len(self.accept_first) * 4,
            "accept_offsets": len(self.accept_offsets) * 4,
            "accept_ids": len(self.accept_ids) * 4,
            "step_first": len(self.step_first) * 4,
            "step_offsets": len(self.step_offsets) * 4,
            "step_ids": len(self.step_ids) * 4,
        }
        kernel = ("byte_class", "transitions", "accept_first", "step_first")
        return {
            "num_states": self.num_states,
            "num_classes": self.num_classes,
            "start": self.start,
            "anchored_start": self.anchored_start,
            "dead": self.dead,
            "max_path": MAX_PATH,
            "bytes": sizes,
            "header_bytes": _HEADER.size,
            "total_bytes": _HEADER.size + sum(sizes.values()),
            "kernel_bytes": sum(sizes[name] for name in kernel),
        }

    def to_bytes(self) -> bytes:
        """Serialise the tables: a 40-byte header, then every table, little-endian (module doc)."""
        header = _HEADER.pack(
            BLOB_MAGIC,
            BLOB_VERSION,
            MAX_PATH,
            self.num_states,
            self.num_classes,
            self.start,
            self.anchored_start,
            self.dead,
            len(self.accept_ids),
            len(self.step_ids),
        )
        parts = [header, self.byte_class]
        for table in (
            self.transitions,
            self.accept_first,
            self.accept_offsets,
            self.accept_ids,
            self.step_first,
            self.step_offsets,
            self.step_ids,
        ):
            parts.append(struct.pack(f"<{len(table)}I", *table))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> DfaTables:
        """Parse and validate the output of :meth:`to_bytes`; raise ValueError when malformed."""
        if len(blob) < _HEADER.size + 256:
            raise ValueError(f"DFA blob too short: {len(blob)} bytes")
        magic, version, max_path, ns, nc, start, anchored, dead, n_acc, n_step = _HEADER.unpack_from(blob)
        if magic != BLOB_MAGIC or version != BLOB_VERSION:
            raise ValueError(f"not a version {BLOB_VERSION} DFA blob (magic {magic:#x}, version {version})")
        if max_path != MAX_PATH:
            raise ValueError(f"DFA blob built for MAX_PATH {max_path}, this build walks {MAX_PATH}")
        counts = (ns * nc, ns, ns, n_acc, ns, ns, n_step)
        want = _HEADER.size + 256 + 4 * sum(counts)
        if len(blob) != want:
            raise ValueError(f"DFA blob is {len(blob)} bytes, its header says {want}")
        pos = _HEADER.size
        byte_class = bytes(blob[pos : pos + 256])
        pos += 256
        tables: list[array[int]] = []
        for count in counts:
            tables.append(array("I", struct.unpack_from(f"<{count}I", blob, pos)))
            pos += 4 * count
        parsed = cls(ns, nc, start, anchored, dead, byte_class, *tables)
        parsed.check()
        return parsed

    def check(self) -> None:
        """Raise ValueError unless every invariant the BPF loop relies on holds."""
        ns, nc = self.num_states, self.num_classes
        if ns < 1 or not 1 <= nc <= 256:
            raise ValueError(f"bad shape: {ns} states, {nc} classes")
        if self.start != 0 or not 0 <= self.anchored_start < ns or not 0 <= self.dead < ns:
            raise ValueError("start must be 0; anchored_start and dead must be states")
        if len(self.byte_class) != 256 or max(self.byte_class) >= nc:
            raise ValueError("byte_class must map 256 bytes to classes below num_classes")
        if len(self.transitions) != ns * nc or max(self.transitions) >= ns:
            raise ValueError("transitions must be num_states * num_classes entries below num_states")
        for first, offsets, ids in (
            (self.accept_first, self.accept_offsets, self.accept_ids),
            (self.step_first, self.step_offsets, self.step_ids),
        ):
            if len(first) != ns or len(offsets) != ns or not ids or ids[-1] != 0:
                raise ValueError("id tables must have one entry per state and end with 0")
            for state in range(ns):
                if offsets[state] >= len(ids):
                    raise ValueError(f"state {state}: list offset out of range")
                listed = _read_list(offsets, ids, state)
                if listed != sorted(set(listed)) or first[state] != (listed[0] if listed else 0):
                    raise ValueError(f"state {state}: id list not ascending or first id disagrees")
        if self.step_first[self.start] or self.step_first[self.anchored_start]:
            raise ValueError("a start state must not carry a step id")
        row = self.transitions[self.dead * nc : (self.dead + 1) * nc]
        if any(t != self.dead for t in row) or self.accept_first[self.dead] or self.step_first[self.dead]:
            raise ValueError(f"state {self.dead} is not a non-accepting sink")


# --------------------------------------------------------------------------------------------
# Construction


@dataclass(frozen=True, slots=True)
class _Chain:
    """One deduplicated pattern as a chain of positions: bits ``base .. base + len(atoms)``."""

    step: bool  # reported on entering the final position (else accepted at the end of the walk)
    atoms: tuple[int, ...]  # _STAR or a 256-bit mask of the bytes the position consumes
    base: int
    patterns: tuple[Pattern, ...]

    @property
    def anchored(self) -> bool:
        """Say whether the chain can only start matching at the first byte of the path."""
        return not self.atoms or self.atoms[0] != _STAR


def _atoms(pat: Pattern) -> tuple[bool, tuple[int, ...]]:
    """Return (step, atoms) for *pat*: ``*lit`` for contains, the glob with ``**`` collapsed."""

    def literal(ch: int) -> int:
        mask = 1 << ch
        if pat.case_insensitive and (0x41 <= ch <= 0x5A or 0x61 <= ch <= 0x7A):
            mask |= 1 << (ch ^ 0x20)
        return mask

    if pat.kind == "contains":
        if not pat.text:  # matches every path: the glob "*", accepted at the end
            return False, (_STAR,)
        return True, (_STAR, *(literal(ch) for ch in pat.text))
    atoms: list[int] = []
    for ch in pat.text:
        if ch == 0x2A:
            if not atoms or atoms[-1] != _STAR:
                atoms.append(_STAR)
        else:
            atoms.append(_ANY if ch == 0x3F else literal(ch))
    if len(atoms) > 1 and atoms[-1] == _STAR:
        # "X*" is decided as soon as a prefix of the path matches X: report it then, forget it.
        return True, tuple(atoms[:-1])
    return False, tuple(atoms)


class _Nfa:
    """The position automaton of all patterns, one bit per position."""

    def __init__(self, patterns: Sequence[Pattern], *, split_anchored: bool) -> None:
        groups: dict[tuple[bool, tuple[int, ...]], list[Pattern]] = {}
        for pat in patterns:
            groups.setdefault(_atoms(pat), []).append(pat)
        self.chains: list[_Chain] = []
        self.star = 0
        self.step_final = 0
        self.end_final = 0
        self.final_ids: dict[int, frozenset[int]] = {}
        free_start = anchored_start = 0
        adv_by_byte = [0] * 256
        base = 0
        for (step, atoms), pats in groups.items():
            chain = _Chain(step, atoms, base, tuple(pats))
            self.chains.append(chain)
            if split_anchored and chain.anchored:
                anchored_start |= 1 << base
            else:
                free_start |= 1 << base
            for i, atom in enumerate(atoms):
                bit = 1 << (base + i)
                if atom == _STAR:
                    self.star |= bit
                    continue
                mask = atom
                while mask:
                    low = mask & -mask
                    adv_by_byte[low.bit_length() - 1] |= bit
                    mask ^= low
            final = base + len(atoms)
            if step:
                self.step_final |= 1 << final
            else:
                self.end_final |= 1 << final
            self.final_ids[final] = frozenset(p.rule_id for p in pats)
            base = final + 1
        # The empty set is the dead state; listing it as a root makes sure it exists.
        self.roots = (self.close(free_start), self.close(anchored_start), 0)
        # Bytes on which every position agrees form one class; classes are numbered by first byte.
        class_of: dict[int, int] = {}
        self.byte_class = bytes(class_of.setdefault(adv, len(class_of)) for adv in adv_by_byte)
        self.adv = list(class_of)

    def close(self, states: int) -> int:
        """Add the epsilon successor of every active ``*`` (no two ``*`` are adjacent)."""
        return states | ((states & self.star) << 1)

    def ids(self, active: int) -> frozenset[int]:
        """Return the rule ids of the final positions in *active*."""
        out: set[int] = set()
        while active:
            low = active & -active
            out |= self.final_ids[low.bit_length() - 1]
            active ^= low
        return frozenset(out)


def _blame(nfa: _Nfa, sets: list[int]) -> str:
    """Name the patterns with the most distinct partial states among (a sample of) *sets*."""
    sample = sets[:: max(1, len(sets) // _BLAME_SAMPLE)]
    scored = []
    for index, chain in enumerate(nfa.chains):
        mask = (1 << (len(chain.atoms) + 1)) - 1
        scored.append((len({(s >> chain.base) & mask for s in sample}), index))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return "; ".join(
        f"{nfa.chains[index].patterns[0]} ({distinct} distinct partial states in {len(sample)} sampled)"
        for distinct, index in scored[:3]
    )


def _subsets(nfa: _Nfa, limit: int, max_states: int) -> tuple[list[int], array[int]]:
    """Build the subsets reachable from the roots; raise PolicyCompileError past *limit* of them."""
    nc = len(nfa.adv)
    adv = nfa.adv
    star = nfa.star
    index: dict[int, int] = {}
    sets: list[int] = []
    for root in nfa.roots:
        if root not in index:
            index[root] = len(sets)
            sets.append(root)
    trans = array("I")
    i = 0
    while i < len(sets):
        current = sets[i]
        i += 1
        stay = current & star
        for c in range(nc):
            nxt = ((current & adv[c]) << 1) | stay
            nxt |= (nxt & star) << 1
            j = index.get(nxt)
            if j is None:
                j = len(sets)
                if j >= limit:
                    raise PolicyCompileError(
                        f"path patterns need more than {limit} DFA states before minimisation "
                        f"(limit {max_states} after); most states come from: {_blame(nfa, sets)}"
                    )
                index[nxt] = j
                sets.append(nxt)
            trans.append(j)
    return sets, trans


def _minimise(num: int, nc: int, trans: array[int], labels: list[int], limit: int) -> list[int] | int:
    """Return the block of each state after Moore refinement from the partition *labels*.

    Refinement only ever splits blocks, so once there are more than *limit* of them the result
    cannot fit: return that block count instead of finishing.
    """
    rows = [trans[s * nc : (s + 1) * nc] for s in range(num)]
    block = labels
    count = len(set(labels))
    while count <= limit:
        get = block.__getitem__
        sigs: dict[tuple[int, tuple[int, ...]], int] = {}
        new = [sigs.setdefault((block[s], tuple(map(get, rows[s]))), len(sigs)) for s in range(num)]
        if len(sigs) == count:
            return block
        block, count = new, len(sigs)
    return count


def _id_lists(per_state: list[frozenset[int]]) -> tuple[array[int], array[int], array[int]]:
    """Lay out per-state id sets as (first, offsets, 0-terminated ids), sharing equal lists."""
    first = array("I")
    offsets = array("I")
    ids = array("I", [0])
    where: dict[frozenset[int], int] = {frozenset(): 0}
    for rule_ids in per_state:
        at = where.get(rule_ids)
        if at is None:
            at = where[rule_ids] = len(ids)
            ids.extend(sorted(rule_ids))
            ids.append(0)
        offsets.append(at)
        first.append(min(rule_ids) if rule_ids else 0)
    return first, offsets, ids


def compile_patterns(
    patterns: Sequence[Pattern], *, max_states: int = DEFAULT_MAX_STATES, split_anchored: bool = True
) -> DfaTables:
    """Compile *patterns* into one minimal byte-class DFA and return its tables.

    With *split_anchored* (the default) globs anchored at the start of the path get their own
    lane (``anchored_start``), which keeps the table a sum rather than a product of the two
    automata; without it every pattern is in the lane at ``start`` and ``anchored_start`` is
    ``dead``. Raise :class:`~guard.errors.PolicyCompileError` when the table needs more than
    *max_states* states (or subset construction more than twice that), naming the patterns that
    contribute the most states.
    """
    if max_states < 1:
        raise ValueError(f"max_states must be at least 1, not {max_states}")
    for pat in patterns:
        if not isinstance(pat, Pattern):
            raise TypeError(f"expected Pattern, got {type(pat).__name__}")
    nfa = _Nfa(patterns, split_anchored=split_anchored)
    nc = len(nfa.adv)
    sets, trans = _subsets(nfa, _SUBSET_FACTOR * max_states, max_states)

    # Initial partition: states with equal (accept ids, step ids) outputs.
    outputs = [(nfa.ids(s & nfa.end_final), nfa.ids(s & nfa.step_final)) for s in sets]
    label_of: dict[tuple[frozenset[int], frozenset[int]], int] = {}
    labels = [label_of.setdefault(out, len(label_of)) for out in outputs]
    block = _minimise(len(sets), nc, trans, labels, max_states)
    if isinstance(block, int):
        raise PolicyCompileError(
            f"path patterns need at least {block} DFA states after minimisation, over the limit of "
            f"{max_states}; most states come from: {_blame(nfa, sets)}"
        )

    # Renumber blocks breadth-first from the roots, the free lane's start first (so start = 0).
    rep: dict[int, int] = {}
    for state, b in enumerate(block):
        rep.setdefault(b, state)
    order: dict[int, int] = {}
    queue: list[int] = []
    rows: list[list[int]] = []
    for root in nfa.roots:
        first = block[sets.index(root)]
        if first not in order:
            order[first] = len(queue)
            queue.append(first)
        while len(rows) < len(queue):
            s = rep[queue[len(rows)]]
            row = []
            for c in range(nc):
                target = block[trans[s * nc + c]]
                new = order.get(target)
                if new is None:
                    new = order[target] = len(queue)
                    queue.append(target)
                row.append(new)
            rows.append(row)
    num = len(queue)  # every block is reachable from a root, so this is the block count

    # Merge byte classes whose columns are now identical; classes stay numbered by first byte.
    column_class: dict[tuple[int, ...], int] = {}
    remap = [column_class.setdefault(tuple(row[c] for row in rows), len(column_class)) for c in range(nc)]
    keep = [remap.index(k) for k in range(len(column_class))]
    state_outputs = [outputs[rep[b]] for b in queue]
    accept_first, accept_offsets, accept_ids = _id_lists([out[0] for out in state_outputs])
    step_first, step_offsets, step_ids = _id_lists([out[1] for out in state_outputs])
    starts = [order[block[sets.index(root)]] for root in nfa.roots]
    return DfaTables(
        num_states=num,
        num_classes=len(keep),
        start=starts[0],
        anchored_start=starts[1],
        dead=starts[2],
        byte_class=bytes(remap[c] for c in nfa.byte_class),
        transitions=array("I", [row[c] for row in rows for c in keep]),
        accept_first=accept_first,
        accept_offsets=accept_offsets,
        accept_ids=accept_ids,
        step_first=step_first,
        step_offsets=step_offsets,
        step_ids=step_ids,
    )
