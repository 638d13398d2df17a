"""The policy compiler: every rule split into kernel-inline, sequence-armed or detect-only.

``compile_policy(policy)`` decides, per rule, the path it takes (``guardctl policy explain`` prints
it, with the reason whenever a rule is not inline) and produces what each side needs:

- **kernel-inline**: a single-event ``block``/``kill`` rule whose condition is, after dropping the
  tests every call of the hook passes (``event.type``/``event.action`` of the hook's own shape), one
  test of the hook's object: the exec'd file (``process.executable``, ``file.path``, ``process.name``
  as the basename), the opened file (``file.path``, ``file.name``, ``file.extension``), the destination
  (``destination.ip`` / CIDR and ``destination.port``), or the ptrace target (``target.process.pid``,
  or ``target.process.name`` / ``.executable``, resolved to pids by the agent) — optionally with an
  exemption list of executables (``not process.executable in (...)``, matched in the kernel by the
  binary's (device, inode)). It becomes verdict-map entries and DFA patterns: no user-space round trip.
- **sequence-armed**: a ``block`` sequence whose join keys name a process entity
  (``process.entity_id``/``pid`` or ``process.parent.entity_id``/``pid``) and whose last step the
  kernel can deny for that entity: a file named by a join key (exec or open, by inode) or every call
  of the hook when the last step tests nothing else. The engine reports when every step but the
  last has matched (:class:`~guard.policy.engine.ArmSignal`); the agent arms the verdict until maxspan.
- **detect-only**: everything else, with the reason; the engine alerts (and ``kill`` kills after).

The interest push-down: each step the engine evaluates asks the kernel for just the events it can
match — notify verdicts on its object test when it has one, created files or chmods only when the
step is about those, every call of the hook otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from guard.errors import PolicyCompileError, PolicyError
from guard.lsm import abi
from guard.lsm.verdicts import (
    MAX_SUBJECT_TESTS,
    Action,
    KernelPolicy,
    NetRule,
    PathKind,
    PathRule,
    PtraceRule,
    Subject,
    SubjectField,
    SubjectTerm,
    term_key,
)
from guard.model import EVENT_KINDS, EventKind, EventShape, Hook, Telemetry
from guard.policy.ast import And, Call, Comparison, Expr, Field, InSet, Literal, Not, Or, StringMatch
from guard.policy.engine import Engine
from guard.policy.evaluator import compile_expr
from guard.policy.ir import StepIR
from guard.policy.loader import Policy, Rule
from guard.policy.predicates.abi import UserModule
from guard.policy.walker import fields_read, stateful
from guard.policy.wildcard import is_literal

__all__ = [
    "ENTITY_FIELDS",
    "INLINE",
    "ArmPlan",
    "CompiledPolicy",
    "RulePlan",
    "TargetSelector",
    "compile_policy",
    "for_plane",
    "rule_number",
]

INLINE: Final = "kernel-inline"
ARMED: Final = "sequence-armed"
DETECT: Final = "detect-only"

#: Join-key fields that name a process entity, and whose process it names: the event's own or its parent.
ENTITY_FIELDS: Final[Mapping[str, str]] = {
    "process.entity_id": "self",
    "process.pid": "self",
    "process.parent.entity_id": "parent",
    "process.parent.pid": "parent",
}

_SHAPE_FIELDS: Final = frozenset({"event.type", "event.action", "event.kind", "event.category"})
#: Object fields the kernel matches, per hook, and how (path / basename / extension).
_PATH_FIELDS: Final[Mapping[Hook, Mapping[str, str]]] = {
    Hook.BPRM_CHECK_SECURITY: {
        "process.executable": "path",
        "file.path": "path",
        "process.name": "name",
        "file.name": "name",
    },
    Hook.FILE_OPEN: {"file.path": "path", "file.name": "name", "file.extension": "extension"},
}
_TARGET_FIELDS: Final = frozenset({"target.process.pid", "target.process.name", "target.process.executable"})
#: What the hooks test of the caller (subject conditions, guard_abi.h), per hook. At exec the
#: process.* fields name the new image (the object) and the caller's uid is not yet the new one.
_CALLER_FIELDS: Final[Mapping[str, SubjectField]] = {
    "process.name": SubjectField.NAME,
    "process.parent.name": SubjectField.PARENT_NAME,
    "user.id": SubjectField.UID,
}
_SUBJECT_FIELDS: Final[Mapping[Hook, frozenset[str]]] = {
    Hook.BPRM_CHECK_SECURITY: frozenset({"process.parent.name"}),
    Hook.FILE_OPEN: frozenset(_CALLER_FIELDS),
    Hook.SOCKET_CONNECT: frozenset(_CALLER_FIELDS),
    Hook.PTRACE_ACCESS_CHECK: frozenset(_CALLER_FIELDS),
}
#: A case-insensitive name becomes its case variants, up to this many per value.
_MAX_CASE_VARIANTS: Final = 64


class _NotInline(Exception):
    """A term the kernel cannot test; the message says why."""


class _BadLiteral(_NotInline):
    """A literal the kernel test needs is invalid (a destination.ip that is no address or network)."""


@dataclass(frozen=True, slots=True)
class TargetSelector:
    """Protected processes named in a ptrace rule, resolved to pids by the agent (name or executable)."""

    rule_number: int
    names: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    action: Action = Action.DENY

    def selects(self, name: str, executable: str) -> bool:
        """Return whether a process with this comm/name and executable is protected."""
        return name in self.names or executable in self.executables


@dataclass(frozen=True, slots=True)
class ArmPlan:
    """How the agent arms a sequence's last step for an entity."""

    hook: Hook
    entity_key: int  # index into the join keys: the entity's value
    entity_of: str  # "self" | "parent": whose process the key names
    target_key: int | None  # index of the join key holding the target file's path (None: the whole hook)


@dataclass(frozen=True, slots=True)
class RulePlan:
    """One rule's path through the system."""

    rule: Rule
    number: int  # the kernel's rule id
    path: str  # kernel-inline | sequence-armed | detect-only
    hook: tuple[EventKind, ...]  # the kinds of event that decide it (several: none decides alone)
    reason: str  # why not inline ("" when inline)
    arm: ArmPlan | None = None
    exemptions: tuple[str, ...] = ()  # executables the inline verdict exempts
    subject: str = ""  # the tests of the caller an inline deny also needs ("" = none)

    def to_json(self) -> dict[str, object]:
        """Return the plan as JSON-ready data."""
        return {
            "rule": self.rule.id,
            "number": self.number,
            "action": self.rule.action,
            "mode": self.rule.mode,
            "path": self.path,
            "hook": _names(self.hook),
            "reason": self.reason,
            "exemptions": list(self.exemptions),
            "subject": self.subject,
        }


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """What the kernel and the engine each get from a policy."""

    plans: tuple[RulePlan, ...]
    kernel: KernelPolicy
    targets: tuple[TargetSelector, ...]
    #: (rule number, executable path) pairs the kernel exempts from that rule's verdict
    exemptions: tuple[tuple[int, str], ...] = ()
    engine_rules: tuple[Rule, ...] = ()
    armed: frozenset[str] = frozenset()
    rule_ids: Mapping[int, str] = field(default_factory=dict)
    #: the user-function modules beside the policy (for rules on the wasm / lua runtimes)
    modules: tuple[UserModule, ...] = ()

    def plan(self, rule_id: str) -> RulePlan:
        """Return a rule's plan by its id (KeyError when absent)."""
        for p in self.plans:
            if p.rule.id == rule_id:
                return p
        raise KeyError(rule_id)

    def number(self, rule_id: str) -> int:
        """Return a rule's kernel number."""
        return self.plan(rule_id).number


# --------------------------------------------------------------------------- terms


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, And):
        return [t for term in e.terms for t in _conjuncts(term)]
    if isinstance(e, Literal) and e.value is True:
        return []
    return [e]


def _fields(e: Expr) -> set[str]:
    return set(fields_read(e))


def _shape_event(shape: EventShape, category: str) -> dict[str, object]:
    return {"event": {"category": [category], "type": [shape.type], "action": shape.action, "kind": "event"}}


def _split(step: StepIR) -> tuple[list[Expr], list[Expr]]:
    terms = _conjuncts(step.condition)
    shape = [t for t in terms if _fields(t) and _fields(t) <= _SHAPE_FIELDS]
    return shape, [t for t in terms if not (_fields(t) and _fields(t) <= _SHAPE_FIELDS)]


def _kinds(step: StepIR) -> tuple[list[EventKind], list[Expr]]:
    """Return the event kinds a step can match (by its category and shape tests) and its other terms.

    A ``process`` step is about exec unless its shape tests exclude exec or it reads ``target.*``
    (then ptrace); a ``file`` step is about opens unless its shape tests say chmod.
    """
    shape_terms, rest = _split(step)
    category = step.category
    candidates = [k for k in EVENT_KINDS if k.category == category] if category else EVENT_KINDS
    possible: list[EventKind] = []
    for kind in candidates:
        events = [_shape_event(s, kind.category) for s in kind.events]
        if any(all(compile_expr(t)(ev) is True for t in shape_terms) for ev in events):
            possible.append(kind)
    if category == "process" and len(possible) == 2:
        targets = any(f in _TARGET_FIELDS for t in rest for f in _fields(t))
        possible = [Hook.PTRACE_ACCESS_CHECK if targets else Hook.BPRM_CHECK_SECURITY]
    elif category == "file" and len(possible) == 2:
        possible = [Hook.FILE_OPEN]  # chmod is telemetry: a file rule decides on opens unless it says chmod
    return possible, rest


def _strings(items: Iterable[Expr], what: str) -> list[str]:
    out = []
    for item in items:
        if not isinstance(item, Literal) or not isinstance(item.value, str):
            raise _NotInline(f"{what}: only string literals can be matched in the kernel")
        out.append(item.value)
    return out


def _field_of(e: Expr) -> str | None:
    return e.name if isinstance(e, Field) else None


def _path_rules(term: Expr, hook: Hook, number: int, action: Action) -> list[PathRule]:
    """One object term (an ``or`` of tests of the hook's path fields) as path rules."""
    fields = _PATH_FIELDS[hook]
    if isinstance(term, Or):
        return [r for t in term.terms for r in _path_rules(t, hook, number, action)]
    field_name: str | None = None
    pats: list[tuple[PathKind, str, bool]] = []  # kind, pattern, case-insensitive
    if isinstance(term, Comparison) and term.op == "==":
        field_name = _field_of(term.left)
        pats = [("exact", v, False) for v in _strings([term.right], term.render())]
    elif isinstance(term, InSet) and not term.negated:
        field_name = _field_of(term.value)
        ci = term.case_insensitive
        pats = [("glob" if ci else "exact", v, ci) for v in _strings(term.items, term.render())]
    elif isinstance(term, StringMatch) and term.op in (":", "like"):
        field_name = _field_of(term.value)
        ci = term.op == ":" or term.case_insensitive
        for p in term.patterns:
            if not ci and is_literal(p):
                pats.append(("exact", p, False))
            elif not ci and p.endswith("*") and is_literal(p[:-1]):
                pats.append(("prefix", p[:-1], False))
            elif not ci and p.startswith("*") and is_literal(p[1:]):
                pats.append(("suffix", p[1:], False))
            else:
                pats.append(("glob", p, ci))
    elif isinstance(term, Call) and term.name.lower() in ("startswith", "endswith", "stringcontains"):
        if len(term.args) != 2:
            raise _NotInline(f"`{term.render()}`: takes two arguments here")
        field_name = _field_of(term.args[0])
        (text,) = _strings(term.args[1:], term.render())
        ci = term.case_insensitive
        name = term.name.lower()
        if ci:
            glob_text = {
                "startswith": text + "*",
                "endswith": "*" + text,
                "stringcontains": "*" + text + "*",
            }[name]
            if not is_literal(text):
                raise _NotInline(f"`{term.render()}`: '*' or '?' in the text has no kernel escape")
            pats = [("glob", glob_text, True)]
        else:
            kind: PathKind = {"startswith": "prefix", "endswith": "suffix", "stringcontains": "contains"}[
                name
            ]  # type: ignore[assignment]
            pats = [(kind, text, False)]
    else:
        raise _NotInline(f"`{term.render()}`: not a path test the kernel tables can hold")
    if field_name is None or field_name not in fields:
        raise _NotInline(
            f"`{term.render()}`: {field_name or 'this expression'} is not visible to the {hook.short} hook"
        )
    how = fields[field_name]
    out = []
    for kind, pattern, ci in pats:
        if not pattern:
            raise _NotInline(f"`{term.render()}`: an empty pattern")
        if how == "name":
            if "/" in pattern:
                raise _NotInline(f"`{term.render()}`: a name never holds '/'")
            kind, pattern = _under(kind, pattern, "/")
        elif how == "extension":
            kind, pattern = _under(kind, pattern, ".")
        if kind == "glob" and is_literal(pattern) and not ci:
            kind = "exact"
        out.append(
            PathRule(
                hook, kind, pattern, number, action, case_insensitive=ci and kind in ("glob", "contains")
            )
        )
    return out


def _under(kind: PathKind, pattern: str, sep: str) -> tuple[PathKind, str]:
    """Return a basename (``sep`` = "/") or extension (".") test as a whole-path pattern."""
    if kind == "exact":
        return "suffix", sep + pattern
    if kind == "suffix":  # name ends with: path ends with (and it has no '/')
        return "suffix", pattern
    if kind == "glob":
        return "glob", "*" + sep + pattern
    raise _NotInline(f"a {kind} test of a name cannot be expressed as a path test")


def _exemption(term: Expr) -> list[str] | None:
    """``not process.executable in (...)`` / ``!=``: the exempted executables; None: not an exemption."""
    inner: Expr | None = None
    if isinstance(term, Not):
        inner = term.expr
        if (
            isinstance(inner, InSet)
            and not inner.negated
            and not inner.case_insensitive
            and _field_of(inner.value) == "process.executable"
        ):
            return _strings(inner.items, term.render())
        if (
            isinstance(inner, Comparison)
            and inner.op == "=="
            and _field_of(inner.left) == "process.executable"
        ):
            return _strings([inner.right], term.render())
        return None
    if (
        isinstance(term, InSet)
        and term.negated
        and not term.case_insensitive
        and _field_of(term.value) == "process.executable"
    ):
        return _strings(term.items, term.render())
    if isinstance(term, Comparison) and term.op == "!=" and _field_of(term.left) == "process.executable":
        return _strings([term.right], term.render())
    return None


def _networks(term: Expr) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """Return a destination.ip test as networks (None: not one)."""
    if isinstance(term, Or):
        parts = [_networks(t) for t in term.terms]
        if any(p is None for p in parts):
            return None
        return [n for p in parts if p is not None for n in p]
    texts: list[str] | None = None
    if (
        isinstance(term, Call)
        and term.name.lower() == "cidrmatch"
        and _field_of(term.args[0]) == "destination.ip"
    ):
        texts = _strings(term.args[1:], term.render())
    elif isinstance(term, Comparison) and term.op == "==" and _field_of(term.left) == "destination.ip":
        texts = _strings([term.right], term.render())
    elif isinstance(term, InSet) and not term.negated and _field_of(term.value) == "destination.ip":
        texts = _strings(term.items, term.render())
    if texts is None:
        return None
    try:
        return [ipaddress.ip_network(t, strict=False) for t in texts]
    except ValueError as exc:
        raise _BadLiteral(f"destination.ip: `{term.render()}`: not an address or network: {exc}") from None


def _ports(term: Expr) -> list[int] | None:
    if isinstance(term, Or):
        parts = [_ports(t) for t in term.terms]
        if any(p is None for p in parts):
            return None
        return [n for p in parts if p is not None for n in p]
    values: list[Expr] | None = None
    if isinstance(term, Comparison) and term.op == "==" and _field_of(term.left) == "destination.port":
        values = [term.right]
    elif isinstance(term, InSet) and not term.negated and _field_of(term.value) == "destination.port":
        values = list(term.items)
    if values is None:
        return None
    out = []
    for v in values:
        if not isinstance(v, Literal) or isinstance(v.value, bool) or not isinstance(v.value, int):
            raise _NotInline(f"`{term.render()}`: ports must be integer literals")
        if not 0 < v.value <= 65535:
            raise _NotInline(f"`{term.render()}`: port {v.value} out of range 1..65535")
        out.append(v.value)
    return out


def _case_variants(text: str, what: str) -> set[bytes]:
    """Every ASCII case spelling of ``text`` (``:`` and ``in~`` fold case), or _NotInline."""
    raw = text.encode("utf-8", "surrogateescape")
    letters = sum(1 for b in raw if chr(b).isalpha() and b < 128)
    if 2**letters > _MAX_CASE_VARIANTS:
        raise _NotInline(f"`{what}`: a case-insensitive name with {letters} letters ({2**letters} spellings)")
    out = {b""}
    for b in raw:
        c = bytes([b])
        out = {o + v for o in out for v in {c.lower(), c.upper()}}
    return out


def _subject_values(term: Expr) -> tuple[str, list[object], bool, bool] | None:
    """(field, literal values, negated, case-insensitive) of a caller test; None: not one."""
    if isinstance(term, Not):
        inner = _subject_values(term.expr)
        if inner is None:
            return None
        name, values, neg, ci = inner
        return name, values, not neg, ci
    found: str | None = None
    if isinstance(term, Comparison) and term.op in ("==", "!=") and isinstance(term.right, Literal):
        found = _field_of(term.left)
        return (found, [term.right.value], term.op == "!=", False) if found else None
    if isinstance(term, InSet) and all(isinstance(i, Literal) for i in term.items):
        found = _field_of(term.value)
        values = [i.value for i in term.items if isinstance(i, Literal)]
        return (found, values, term.negated, term.case_insensitive) if found else None
    if isinstance(term, StringMatch) and term.op in (":", "like"):
        found = _field_of(term.value)
        if found is None or not all(is_literal(p) for p in term.patterns):
            return None
        return found, list(term.patterns), False, term.op == ":" or term.case_insensitive
    return None


def _subject_term(hook: Hook, term: Expr) -> SubjectTerm | None:
    """Return a test of the caller as a subject term (None: the term reads no caller field).

    _NotInline: it reads one, in a way the kernel cannot test.
    """
    fields = _fields(term)
    if not fields or not fields <= set(_CALLER_FIELDS) or fields <= set(_PATH_FIELDS.get(hook, {})):
        return None  # not about the caller (at exec, process.name is the new image: the object)
    allowed = _SUBJECT_FIELDS[hook]
    if isinstance(term, Or):
        parts = [_subject_term(hook, t) for t in term.terms]
        first = parts[0]
        if first is None or any(
            p is None or p.field is not first.field or p.negate != first.negate for p in parts
        ):
            raise _NotInline(
                f"`{term.render()}`: an `or` the kernel tests only within one field of the caller"
            )
        union: set[object] = set()
        for p in parts:
            union |= set(p.values) if p is not None else set()
        return SubjectTerm(first.field, frozenset(union), first.negate)  # type: ignore[arg-type]
    parsed = _subject_values(term)
    if parsed is None:
        raise _NotInline(f"`{term.render()}`: the kernel tests the caller's fields by equality or `in`")
    name, values, negate, ci = parsed
    if name not in allowed:
        why = (
            "at exec, process.* is the new image and the caller's uid is not yet the new one"
            if hook is Hook.BPRM_CHECK_SECURITY
            else "not a caller field the kernel reads"
        )
        raise _NotInline(f"`{term.render()}`: {name}: {why}")
    field = _CALLER_FIELDS[name]
    if field is SubjectField.UID:
        uids: set[int] = set()
        for v in values:
            text = str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else ""
            if not text.isdigit() or int(text) >= 2**32:
                raise _NotInline(f"`{term.render()}`: user.id {v!r} is no uid")
            uids.add(int(text))
        return SubjectTerm(field, frozenset(uids), negate)
    names: set[bytes] = set()
    for v in values:
        if not isinstance(v, str) or not v:
            raise _NotInline(f"`{term.render()}`: names are non-empty string literals")
        if "/" in v:
            raise _NotInline(f"`{term.render()}`: a name never holds '/'")
        spellings = _case_variants(v, term.render()) if ci else {v.encode("utf-8", "surrogateescape")}
        for raw in spellings:
            if len(raw) > abi.SUBJECT_TEXT - 2:
                raise _NotInline(f"`{term.render()}`: a name over {abi.SUBJECT_TEXT - 2} bytes")
            if field is SubjectField.NAME and len(raw) >= abi.COMM_LEN:
                continue  # the caller's name is its comm, at most 15 bytes: this one never matches
            names.add(raw)
    if not names and not negate:
        raise _NotInline(f"`{term.render()}`: no caller's name (a comm, 15 bytes) can be this")
    if not names:
        return None  # "is none of these" of names no comm can be: always true
    return SubjectTerm(field, frozenset(names), negate)


_FIELD_NAMES: Final = {field: name for name, field in _CALLER_FIELDS.items()}


def _describe(subject: Subject | None) -> str:
    """Return a subject condition as explain prints it (``process.name in (nc)``)."""
    if subject is None:
        return ""
    parts = []
    for t in subject.terms:
        values = sorted(os.fsdecode(v) if isinstance(v, bytes) else str(v) for v in t.values)
        parts.append(f"{_FIELD_NAMES[t.field]} {'not in' if t.negate else 'in'} ({', '.join(values)})")
    return " and ".join(parts)


@dataclass(slots=True)
class _Object:
    """A step's kernel-testable object, from its terms."""

    paths: list[PathRule] = field(default_factory=list)
    nets: list[NetRule] = field(default_factory=list)
    ptrace: list[PtraceRule] = field(default_factory=list)
    targets: list[TargetSelector] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)
    subject: Subject | None = None


def _object(hook: Hook, terms: Sequence[Expr], number: int, action: Action, *, exemptions: bool) -> _Object:
    """Return the terms as one kernel object test, plus exemptions and (for a deny) caller tests.

    _NotInline names a term that is none of these.
    """
    obj = _Object()
    object_terms: list[Expr] = []
    subject_terms: list[SubjectTerm] = []
    for term in terms:
        if action is Action.DENY:
            caller = _subject_term(hook, term)
            if caller is not None:
                subject_terms.append(caller)
                continue
        exempt = _exemption(term) if exemptions and hook.on_file else None
        if exempt is not None and hook is Hook.BPRM_CHECK_SECURITY:
            raise _NotInline(
                f"`{term.render()}`: at exec, process.executable is the new image, and the tables cannot "
                "subtract paths (exempt the caller with process.parent.executable in an engine rule)"
            )
        if exempt is not None:
            obj.exempt.extend(exempt)
            continue
        object_terms.append(term)
    if subject_terms:
        obj.subject = Subject(number, tuple(subject_terms))
        if not object_terms and hook is Hook.SOCKET_CONNECT:
            object_terms = []  # every destination: the ::/0 entry below, for this caller only
        elif not object_terms and hook.on_file:
            obj.paths = [PathRule(hook, "prefix", "/", number, action)]  # every path, for this caller
            return obj
    if hook.on_file:
        if len(object_terms) > 1:
            raise _NotInline(
                f"`{object_terms[1].render()}`: a second test of the {hook.short} hook's object "
                "(its tables hold one pattern per entry)"
            )
        if not object_terms:
            raise _NotInline(f"no test of the {hook.short} hook's object: it would deny every call")
        obj.paths = _path_rules(object_terms[0], hook, number, action)
    elif hook is Hook.SOCKET_CONNECT:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None
        ports: list[int] | None = None
        for term in object_terms:
            n, p = _networks(term), _ports(term)
            if n is not None and nets is None:
                nets = n
            elif p is not None and ports is None:
                ports = p
            else:
                raise _NotInline(
                    f"`{term.render()}`: the connect hook tests one destination network set and one port set"
                )
        if nets is None and ports is None and obj.subject is None:
            raise _NotInline("no test of the destination: it would deny every connect")
        for net in nets or [ipaddress.ip_network("::/0")]:
            for port in ports or [0]:
                obj.nets.append(NetRule(net, port, number, action))
    elif hook is Hook.PTRACE_ACCESS_CHECK:
        if len(object_terms) != 1:
            raise _NotInline("the ptrace hook tests exactly one condition on target.process")
        (term,) = object_terms
        name, values = _target_values(term)
        if name == "target.process.pid":
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise _NotInline(f"`{term.render()}`: pids must be integer literals")
                obj.ptrace.append(PtraceRule(v, number, action))
        else:
            texts = [v for v in values if isinstance(v, str)]
            if len(texts) != len(values):
                raise _NotInline(f"`{term.render()}`: names must be string literals")
            if name == "target.process.name":
                obj.targets.append(TargetSelector(number, names=tuple(texts), action=action))
            else:
                obj.targets.append(TargetSelector(number, executables=tuple(texts), action=action))
    if obj.subject is not None:
        loose = next((p for p in obj.paths if p.kind in ("glob", "contains")), None)
        if loose is not None:
            raise _NotInline(
                f"`{loose.pattern}` ({'case-insensitive ' if loose.case_insensitive else ''}{loose.kind}) "
                "with a test of the caller: the DFA reports one rule per path, so only exact, prefix "
                "and suffix paths carry caller tests"
            )
        if obj.targets:
            raise _NotInline("ptrace targets named by process name or executable with a test of the caller")
    return obj


def _target_values(term: Expr) -> tuple[str, list[object]]:
    if isinstance(term, Comparison) and term.op == "==" and _field_of(term.left) in _TARGET_FIELDS:
        right = term.right
        if isinstance(right, Literal):
            return _field_of(term.left) or "", [right.value]
    if isinstance(term, InSet) and not term.negated and not term.case_insensitive:
        name = _field_of(term.value)
        if name in _TARGET_FIELDS and all(isinstance(i, Literal) for i in term.items):
            return name or "", [i.value for i in term.items if isinstance(i, Literal)]
    raise _NotInline(
        f"`{term.render()}`: the ptrace hook matches target.process.pid/name/executable equality"
    )


# --------------------------------------------------------------------------- rules


@dataclass(slots=True)
class _Build:
    paths: list[PathRule] = field(default_factory=list)
    nets: list[NetRule] = field(default_factory=list)
    ptrace: list[PtraceRule] = field(default_factory=list)
    targets: list[TargetSelector] = field(default_factory=list)
    exemptions: list[tuple[int, str]] = field(default_factory=list)
    flags: dict[Hook, int] = field(default_factory=dict)
    subjects: list[Subject] = field(default_factory=list)

    def flag(self, hook: Hook, bit: int) -> None:
        self.flags[hook] = self.flags.get(hook, 0) | bit

    def take(self, obj: _Object) -> None:
        self.paths += obj.paths
        self.nets += obj.nets
        self.ptrace += obj.ptrace
        self.targets += obj.targets
        if obj.subject is not None:
            self.subjects.append(obj.subject)


def _names(kinds: Sequence[EventKind]) -> str:
    return ",".join(kind.short for kind in kinds)


def _interest(step: StepIR, number: int, build: _Build) -> None:
    """Ask the kernel for the events this step can match (notify verdicts when the object is testable)."""
    kinds, rest = _kinds(step)
    for kind in kinds:
        if isinstance(kind, Telemetry):
            build.flag(kind.gate, abi.HF_EMIT_CHMOD)
            continue
        if kind is Hook.FILE_OPEN and not _opens_too(step):
            build.flag(kind, abi.HF_EMIT_CREATED)
            continue
        try:
            obj = _object(kind, rest, number, Action.NOTIFY, exemptions=False)
        except _NotInline:
            build.flag(kind, abi.HF_EMIT_ALL)
            continue
        if obj.targets:  # protected processes by name: every ptrace, the engine decides
            build.flag(kind, abi.HF_EMIT_ALL)
            continue
        build.take(obj)


def _opens_too(step: StepIR) -> bool:
    """Whether a file step can match a plain (not creating) open."""
    shape_terms, _ = _split(step)
    ev = _shape_event(Hook.FILE_OPEN.events[0], Hook.FILE_OPEN.category)
    return all(compile_expr(t)(ev) is True for t in shape_terms)


def _plan_single(rule: Rule, number: int, build: _Build) -> RulePlan:
    step = rule.ir.steps[0]
    kinds, rest = _kinds(step)
    hook = tuple(kinds)
    if rule.action == "alert":
        _interest(step, number, build)
        return RulePlan(rule, number, DETECT, hook, "action = alert: matches are reported, never enforced")
    if not kinds:
        return RulePlan(rule, number, DETECT, hook, "no hook produces the events this rule matches")
    if len(kinds) > 1:
        _interest(step, number, build)
        return RulePlan(
            rule,
            number,
            DETECT,
            hook,
            f"matches events of several hooks ({_names(kinds)}): decide one category",
        )
    (kind,) = kinds
    if isinstance(kind, Telemetry):
        _interest(step, number, build)
        return RulePlan(
            rule, number, DETECT, hook, f"{kind.short} is telemetry: the kernel reports it, never denies it"
        )
    if kind is Hook.FILE_OPEN and not _opens_too(step):
        _interest(step, number, build)
        return RulePlan(rule, number, DETECT, hook, "tests event.type/action beyond what every open is")
    try:
        obj = _object(kind, rest, number, Action.DENY, exemptions=True)
    except _BadLiteral as exc:  # an invalid literal in a block rule: refused, never silently detect-only
        raise PolicyCompileError(str(exc)) from None
    except _NotInline as exc:
        _interest(step, number, build)
        return RulePlan(rule, number, DETECT, hook, str(exc))
    if obj.subject is not None:
        tests = {term_key(t) for s in [*build.subjects, obj.subject] for t in s.terms}
        if len(tests) > MAX_SUBJECT_TESTS:
            _interest(step, number, build)
            return RulePlan(
                rule, number, DETECT, hook,
                f"the policy's earlier rules use the {MAX_SUBJECT_TESTS} distinct tests of the caller "
                "the kernel tells apart",
            )  # fmt: skip
    build.take(obj)
    build.exemptions += [(number, exe) for exe in obj.exempt]
    return RulePlan(
        rule, number, INLINE, hook, "", exemptions=tuple(obj.exempt), subject=_describe(obj.subject)
    )


def _plan_sequence(rule: Rule, number: int, build: _Build) -> RulePlan:
    ir = rule.ir
    for step in [*ir.steps, *([ir.until] if ir.until else [])]:
        _interest(step, number, build)
    positive = [s for s in ir.steps if not s.missing]
    last = positive[-1]
    kinds, rest = _kinds(last)
    hook = tuple(kinds)
    if rule.action != "block":
        return RulePlan(
            rule, number, DETECT, hook, f"action = {rule.action}: a sequence is armed only to block"
        )
    if ir.is_sample:
        return RulePlan(rule, number, DETECT, hook, "a sample is unordered: only the engine matches it")
    if stateful(last.condition):
        return RulePlan(
            rule, number, DETECT, hook, "the last step reads an alias or lineage: the engine decides"
        )
    if ir.steps[-1].missing:
        return RulePlan(
            rule, number, DETECT, hook, "a trailing missing step: the match is known only after maxspan"
        )
    if len(kinds) != 1 or not isinstance(kinds[0], Hook):
        return RulePlan(rule, number, DETECT, hook, "the last step is not one enforcing hook's event")
    kind = kinds[0]
    keys = [k.name if isinstance(k, Field) else "" for k in last.keys]
    entity = next(((i, ENTITY_FIELDS[k]) for i, k in enumerate(keys) if k in ENTITY_FIELDS), None)
    if entity is None:
        return RulePlan(
            rule,
            number,
            DETECT,
            hook,
            "no join key names a process entity (process.entity_id/pid, process.parent.entity_id/pid): "
            "nothing to arm",
        )
    target: int | None = None
    if kind.on_file:
        path_keys = {name for name, how in _PATH_FIELDS[kind].items() if how == "path"}
        target = next((i for i, k in enumerate(keys) if k in path_keys), None)
    if target is None and rest:
        return RulePlan(
            rule,
            number,
            DETECT,
            hook,
            f"the last step tests `{rest[0].render()}`: an armed verdict denies a file named by a join key "
            "or every call of the hook",
        )
    plan = ArmPlan(kind, entity[0], entity[1], target)
    return RulePlan(rule, number, ARMED, hook, "", arm=plan)


def rule_number(rule_id: str, taken: set[int]) -> int:
    """Return a rule's kernel number: stable across policy versions (from its id), unique in ``taken``.

    Stable numbers keep a rule's mode override and its ring-buffer events meaning the same rule when
    the policy around it changes (an agent restarted on a new policy adopts the pinned overrides).
    """
    number = int.from_bytes(hashlib.sha256(rule_id.encode()).digest()[:4], "big") & 0x7FFF_FFFF or 1
    while number in taken:
        number = number % 0x7FFF_FFFF + 1
    taken.add(number)
    return number


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Plan every rule and build the kernel policy; raise PolicyCompileError naming the rule at fault."""
    build = _Build()
    plans: list[RulePlan] = []
    taken: set[int] = set()
    for rule in policy.rules:
        number = rule_number(rule.id, taken)
        for f in rule.ir.lineage:  # the events a lineage test learns from (descendant of [...])
            _interest(StepIR(f.category, f.condition), number, build)
        try:
            plan = (
                _plan_sequence(rule, number, build)
                if rule.ir.is_sequence
                else _plan_single(rule, number, build)
            )
        except PolicyCompileError as exc:
            raise PolicyCompileError(f"{rule.path}: rule {rule.id}: {exc}") from None
        plans.append(plan)
    kernel = KernelPolicy(
        paths=tuple(build.paths),
        nets=tuple(build.nets),
        ptrace=tuple(build.ptrace),
        hook_flags=dict(build.flags),
        subjects=tuple(build.subjects),
    )
    engine_rules = tuple(p.rule for p in plans if p.path != INLINE)
    if any(r.runtime != "python" for r in engine_rules):
        try:  # compile the wasm / lua predicates and their modules now: a bad module fails the policy
            Engine(engine_rules, modules=policy.modules)
        except PolicyError as exc:
            raise PolicyCompileError(str(exc)) from None
    return CompiledPolicy(
        plans=tuple(plans),
        kernel=kernel,
        targets=tuple(build.targets),
        exemptions=tuple(build.exemptions),
        engine_rules=engine_rules,
        armed=frozenset(p.rule.id for p in plans if p.path == ARMED),
        rule_ids={p.number: p.rule.id for p in plans},
        modules=policy.modules,
    )


def for_plane(compiled: CompiledPolicy, unseen: frozenset[EventKind]) -> CompiledPolicy:
    """Return the policy as a plane that never reports the ``unseen`` kinds runs it.

    A sequence with an earlier step that matches only unseen events (the compat plane has no chmod
    event) can never arm there: it is detect-only on that plane, with the reason, and is not armed.
    """
    if not unseen:
        return compiled
    plans = []
    for plan in compiled.plans:
        if plan.path == ARMED:
            positive = [s for s in plan.rule.ir.steps if not s.missing]
            for i, step in enumerate(positive[:-1], 1):
                kinds, _ = _kinds(step)
                if kinds and all(k in unseen for k in kinds):
                    reason = f"step {i} matches {_names(kinds)} events, which this plane never reports"
                    plan = dataclasses.replace(plan, path=DETECT, reason=reason + ": never armed", arm=None)
                    break
        plans.append(plan)
    return dataclasses.replace(
        compiled, plans=tuple(plans), armed=frozenset(p.rule.id for p in plans if p.path == ARMED)
    )
