"""``guardctl rules coverage``: per rule, whether the agent produces what it reads on a kernel plane.

A rule *needs* one event per event filter: an event query's filter, every sequence or sample step
(``![...]`` steps too: a rule that cannot see the event it waits not to see fires wrongly), the
``until`` step and the filter of every ``descendant/child/event of [...]`` test. A need is the
filter's category and its conjuncts on ``event.category``/``type``/``action``/``kind`` (its
*shape*), and the fields it reads: its condition's and join keys' fields, ``?optional`` ones
excepted, plus the fields later steps read from it through its alias (``event0.file.path``).

:func:`rule_coverage` checks each need against :func:`guard.lsm.catalog.produced`: some event
kind the plane produces must pass the shape tests and carry every field the need reads. A rule
*can fire* when every need is met; otherwise it *cannot fire*, and says which fields and which
event kinds (the need's filter, as EQL) are missing, and whether it will once the catalog's
planned rows land. :func:`coverage` loads rule files (Elastic TOML of either kind, through
:func:`~guard.policy.elastic.import_elastic`, or our policy TOML) and reports every rule, with
totals and the fields missing most often across rules: the capture roadmap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from guard.errors import PolicyError
from guard.lsm.catalog import (
    CATALOG,
    EVENT_SPECS,
    NOW,
    PLANES,
    PLANNED,
    EventSpec,
    Plane,
    Row,
    Since,
    produced,
)
from guard.plan.compiler import INLINE, compile_policy
from guard.policy import ast
from guard.policy.elastic import DEFEND, DETECTION, collect_files, import_elastic
from guard.policy.evaluator import compile_expr
from guard.policy.loader import POLICY_SUFFIXES, Policy, Rule, load_policy
from guard.policy.schema import foreign_source
from guard.policy.walker import children

__all__ = [
    "CoverageReport",
    "Need",
    "RuleCoverage",
    "coverage",
    "matchable_kinds",
    "reads_field",
    "rule_coverage",
    "rule_needs",
    "unfilled_fields",
]

Status = Literal["can fire", "cannot fire", "not imported"]
#: Where a rule came from: an Elastic kind (:mod:`guard.policy.elastic`) or our policy files.
POLICY: Final = "policy"
_SHAPE_FIELDS: Final = frozenset({"event.category", "event.type", "event.action", "event.kind"})


@dataclass(frozen=True, slots=True)
class Need:
    """One event a rule needs: its filter's category, shape tests and the fields read from it."""

    category: str | None
    shape: tuple[ast.Expr, ...]
    fields: frozenset[str]
    #: fields read only by exclusions (under a ``not``): not needed to fire
    excluding: frozenset[str] = frozenset()

    def describe(self) -> str:
        """Return the need as EQL, shape tests sorted: ``dns where event.action == "lookup_result"``."""
        head = self.category or "any"
        terms = sorted(t.render() for t in self.shape)
        return f"{head} where {' and '.join(terms)}" if terms else head

    def kinds(self, produced: Iterable[EventSpec]) -> list[EventSpec]:
        """Return the kinds among ``produced`` whose events pass the need's category and shape tests."""
        tests = [compile_expr(term) for term in self.shape]
        return [
            kind
            for kind in produced
            if (self.category is None or self.category in kind.categories)
            and all(test(kind.shape()) is True for test in tests)
        ]


class _Reads:
    """The fields an expression reads from its own event, from aliased events, and its nested filters.

    A field read only by tests a missing field lets through is not required (``excluding``):
    ``not (f == "literal")``, ``not (f in (...))``, ``f != "literal"``, ``f not in (...)``
    (guard.policy.semantics: a missing field equals no literal). Without it those exclusions never
    apply and the rule still fires. Any other use (``like``, ``:``, ordering, a function, ``==``
    outside a ``not``) is false or null on a missing field, which keeps the rule from matching:
    required.
    """

    def __init__(self) -> None:
        self.required: set[str] = set()
        self.optional: set[str] = set()
        self.excluding: set[str] = set()
        self.aliased: list[tuple[str, str]] = []
        self.nested: list[ast.EventFilter] = []

    def walk(self, e: ast.Expr) -> None:
        stack: list[tuple[object, bool]] = [(e, False)]
        while stack:
            node, negated = stack.pop()
            if isinstance(node, ast.EventFilter):
                self.nested.append(node)
                continue
            if (name := _decided_when_missing(node, negated)) is not None:
                self.excluding.add(name)
                continue
            if isinstance(node, ast.Field):
                (self.optional if node.optional else self.required).add(node.name)
            elif isinstance(node, ast.AliasField):
                self.aliased.append((node.alias, node.name))
            elif isinstance(node, ast.Lineage):
                self.required.update(ast.Lineage.READS)
            if isinstance(node, ast.Expr):
                flip = negated != isinstance(node, ast.Not)
                stack.extend((child, flip) for child in children(node))
        self.excluding -= self.required


def _decided_when_missing(node: object, negated: bool) -> str | None:
    """Return the field of a test that lets the rule through when the field is missing, else None.

    ``f == "literal"`` and ``f in ("literals", ...)`` are false on a missing field (under a ``not``:
    an exclusion that never applies); ``f != "literal"`` and ``f not in (...)`` are true (not under
    a ``not``). Either way the rule does not need ``f`` to fire.
    """
    if isinstance(node, ast.Comparison) and node.op == ("!=" if not negated else "=="):
        for field, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(field, ast.Field) and not field.optional and _literal(other):
                return field.name
    if isinstance(node, ast.InSet) and node.negated != negated:
        field = node.value
        if isinstance(field, ast.Field) and not field.optional and all(_literal(i) for i in node.items):
            return field.name
    return None


def _literal(e: ast.Expr) -> bool:
    return isinstance(e, ast.Literal) and e.value is not None


def _conjuncts(e: ast.Expr) -> list[ast.Expr]:
    if isinstance(e, ast.And):
        return [t for term in e.terms for t in _conjuncts(term)]
    return [e]


def _shape(condition: ast.Expr) -> tuple[ast.Expr, ...]:
    out = []
    for term in _conjuncts(condition):
        reads = _Reads()
        reads.walk(term)
        if reads.required and not reads.nested and not reads.aliased and reads.required <= _SHAPE_FIELDS:
            out.append(term)
    return tuple(out)


def rule_needs(rule: Rule) -> tuple[Need, ...]:
    """Return the events a rule needs, one per distinct event filter, in query order."""
    ir = rule.ir
    steps = [*ir.steps, *([ir.until] if ir.until is not None else [])]
    pending: list[tuple[str | None, ast.Expr, tuple[ast.Expr, ...], str | None]] = [
        (s.category, s.condition, s.keys, s.alias) for s in steps
    ]
    found: dict[tuple[str | None, ast.Expr], tuple[set[str], str | None]] = {}
    excluding: dict[tuple[str | None, ast.Expr], set[str]] = {}
    aliased: list[tuple[str, str]] = []
    while pending:
        category, condition, keys, alias = pending.pop(0)
        reads = _Reads()
        reads.walk(condition)
        for key in keys:
            reads.walk(key)
        fields, _ = found.setdefault((category, condition), (set(), alias))
        fields.update(reads.required)
        excluding.setdefault((category, condition), set()).update(reads.excluding)
        aliased.extend(reads.aliased)
        pending.extend((f.category, f.condition, (), None) for f in reads.nested)
    by_alias = {alias: key for key, (_, alias) in found.items() if alias is not None}
    for alias, name in aliased:
        target = by_alias.get(alias)
        if target is not None:
            found[target][0].add(name)
    return tuple(
        Need(category, _shape(condition), frozenset(fields), frozenset(excluding[key] - fields))
        for key, (fields, _) in found.items()
        for category, condition in (key,)
    )


def matchable_kinds(rules: Iterable[Rule]) -> frozenset[EventSpec]:
    """Return the event kinds some rule could match (by its filters' categories and ``event.*`` tests).

    The kinds worth capturing for it: the interest push-down of the process ring's captures.
    """
    return frozenset(k for rule in rules for need in rule_needs(rule) for k in need.kinds(EVENT_SPECS))


def reads_field(rules: Iterable[Rule], name: str) -> bool:
    """Whether some rule reads the field ``name`` (its exclusions included)."""
    return any(name in need.fields or name in need.excluding for rule in rules for need in rule_needs(rule))


@dataclass(frozen=True, slots=True)
class _Verdict:
    fires: bool
    missing_fields: tuple[str, ...]
    missing_kinds: tuple[str, ...]
    #: fields exclusions read that no event kind carries (the exclusion never applies)
    unfilled_exclusions: tuple[str, ...] = ()


def _judge(needs: Sequence[Need], kinds: Mapping[EventSpec, frozenset[str]]) -> _Verdict:
    every = frozenset(f for fields in kinds.values() for f in fields)
    unfilled = tuple(sorted({f for need in needs for f in need.excluding} - every))
    missing_fields: set[str] = set()
    missing_kinds: list[str] = []
    for need in needs:
        candidates = need.kinds(kinds)
        if not candidates:
            missing_kinds.append(need.describe())
            missing_fields.update(need.fields - every)
            continue
        gaps = [need.fields - kinds[k] for k in candidates]
        best: frozenset[str] = min(gaps, key=len)
        missing_fields.update(best)
    kinds_out = tuple(dict.fromkeys(missing_kinds))
    return _Verdict(not missing_fields and not kinds_out, tuple(sorted(missing_fields)), kinds_out, unfilled)


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    """One rule (or a file that gave none) on one plane."""

    path: str
    source: str
    rule_id: str | None
    name: str | None
    status: Status
    missing_fields: tuple[str, ...] = ()
    missing_kinds: tuple[str, ...] = ()
    #: whether the rule can fire once the catalog's planned rows land (None: not imported)
    planned: bool | None = None
    reason: str | None = None
    #: decided in the kernel from its own tables (guard.plan.compiler): no ECS field needed
    kernel_inline: bool = False
    #: fields only its exclusions read that no event carries: those exclusions never apply
    unfilled_exclusions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Return the rule's row as JSON-ready data."""
        return {
            "path": self.path,
            "source": self.source,
            "rule_id": self.rule_id,
            "name": self.name,
            "status": self.status,
            "missing_fields": list(self.missing_fields),
            "missing_kinds": list(self.missing_kinds),
            "planned": self.planned,
            "kernel_inline": self.kernel_inline,
            "unfilled_exclusions": list(self.unfilled_exclusions),
            "reason": self.reason,
        }

    def render(self) -> str:
        """Return the rule's one line of text."""
        if self.status == "not imported":
            return f"not imported  {self.path}  {self.reason}"
        head = f"{self.status:<12}  {self.path}  {self.rule_id}  {self.name}"
        if self.status == "can fire":
            notes = ["kernel-inline"] if self.kernel_inline else []
            if self.unfilled_exclusions:
                notes.append(f"exclusions never apply: {', '.join(self.unfilled_exclusions)} unfilled")
            return head + (f"  ({'; '.join(notes)})" if notes else "")
        why = []
        if self.missing_fields:
            why.append(f"missing fields {', '.join(self.missing_fields)}")
        if self.missing_kinds:
            why.append(f"event kinds {'; '.join(self.missing_kinds)}")
        when = " (can once the planned capture lands)" if self.planned else ""
        return f"{head}: {', '.join(why)}{when}"


def rule_coverage(
    rule: Rule,
    plane: Plane,
    *,
    features: Collection[str] | None = None,
    source: str = POLICY,
    kernel_inline: bool = False,
    catalog: Sequence[Row] = CATALOG,
) -> RuleCoverage:
    """Say whether ``rule`` can fire on ``plane`` (with only ``features`` available, when given).

    A ``kernel_inline`` rule (the compiler put it in the kernel's tables) fires from the kernel's
    own view of the call, whatever the ECS document carries: it can fire.
    """
    if kernel_inline:
        return RuleCoverage(
            rule.path, source, rule.id, rule.name, "can fire", planned=True, kernel_inline=True
        )
    needs = rule_needs(rule)
    now = _judge(needs, produced(plane, features=features, catalog=catalog))
    later = (
        now
        if now.fires
        else _judge(needs, produced(plane, since=(NOW, PLANNED), features=features, catalog=catalog))
    )
    return RuleCoverage(
        rule.path,
        source,
        rule.id,
        rule.name,
        "can fire" if now.fires else "cannot fire",
        now.missing_fields,
        now.missing_kinds,
        later.fires,
        unfilled_exclusions=now.unfilled_exclusions,
    )


def _inline(policy: Policy) -> frozenset[str]:
    """Return the ids of the rules the compiler decides in the kernel (none when it refuses the set)."""
    try:
        plans = compile_policy(policy).plans
    except PolicyError:
        return frozenset()
    return frozenset(p.rule.id for p in plans if p.path == INLINE)


def unfilled_fields(
    rule: Rule, since: Iterable[Since] = (NOW,), catalog: Sequence[Row] = CATALOG
) -> tuple[str, ...]:
    """Return the fields ``rule`` reads that no event kind of any plane carries.

    Not ``?optional`` ones; its exclusions' included.
    """
    stages = tuple(since)
    filled = {
        f
        for plane in PLANES
        for fields in produced(plane, since=stages, catalog=catalog).values()
        for f in fields
    }
    read = {f for need in rule_needs(rule) for f in (*need.fields, *need.excluding)}
    return tuple(sorted(read - filled))


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """Every rule read, on one plane, in file order."""

    plane: Plane
    entries: tuple[RuleCoverage, ...]

    def count(self, status: Status) -> int:
        """Return how many entries have ``status``."""
        return sum(1 for e in self.entries if e.status == status)

    @property
    def planned(self) -> int:
        """Return how many rules that cannot fire now can once the planned rows land."""
        return sum(1 for e in self.entries if e.status == "cannot fire" and e.planned)

    def missing_fields(self) -> list[tuple[str, int]]:
        """Return (field, rules missing it), most common first: the capture roadmap."""
        counts = Counter(f for e in self.entries for f in e.missing_fields)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def missing_kinds(self) -> list[tuple[str, int]]:
        """Return (event kind, rules missing it), most common first."""
        counts = Counter(k for e in self.entries for k in e.missing_kinds)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def by_source(self) -> dict[str, dict[str, int]]:
        """Return source -> counts per status, sources in the order they first appear."""
        out: dict[str, dict[str, int]] = {}
        for e in self.entries:
            row = out.setdefault(e.source, {"can fire": 0, "cannot fire": 0, "not imported": 0})
            row[e.status] += 1
        return out

    def to_json(self, top: int | None = None) -> dict[str, object]:
        """Return the report as JSON-ready data (``top``: how many missing fields and kinds to list)."""
        return {
            "plane": self.plane,
            "can_fire": self.count("can fire"),
            "cannot_fire": self.count("cannot fire"),
            "not_imported": self.count("not imported"),
            "can_fire_when_planned": self.count("can fire") + self.planned,
            "sources": {
                source: {k.replace(" ", "_"): n for k, n in counts.items()}
                for source, counts in self.by_source().items()
            },
            "missing_fields": [
                {"field": f, "rules": n, "source": foreign_source(f)} for f, n in self.missing_fields()[:top]
            ],
            "missing_kinds": [{"kind": k, "rules": n} for k, n in self.missing_kinds()[:top]],
            "rules": [e.to_json() for e in self.entries],
        }

    def render_text(self, top: int | None = 15) -> str:
        """Return one line per rule, the totals and the most common missing fields and kinds."""
        lines = [e.render() for e in self.entries]
        rules = self.count("can fire") + self.count("cannot fire")
        lines.append(
            f"plane {self.plane}: {self.count('can fire')} of {rules} rules can fire, "
            f"{self.count('cannot fire')} cannot ({self.planned} can once the planned capture lands); "
            f"{self.count('not imported')} file(s) not imported"
        )
        for source, counts in self.by_source().items():
            lines.append(
                f"  {source}: {counts['can fire']} can fire, {counts['cannot fire']} cannot, "
                f"{counts['not imported']} not imported"
            )
        fields = self.missing_fields()[:top]
        if fields:
            width = len(str(fields[0][1]))
            lines.append("most common missing fields (rules):")
            for f, n in fields:
                foreign = foreign_source(f)
                lines.append(f"  {n:>{width}} {f}" + (f"  ({foreign}: no sensor here)" if foreign else ""))
        kinds = self.missing_kinds()[:top]
        if kinds:
            width = len(str(kinds[0][1]))
            lines.append("most common missing event kinds (rules):")
            lines.extend(f"  {n:>{width}} {k}" for k, n in kinds)
        return "\n".join(lines)


_POLICY_TABLE: Final = re.compile(r"^[ \t]*\[\[[ \t]*rule[ \t]*\]\]", re.MULTILINE)


def _is_policy_file(f: Path) -> bool:
    """Tell our policy files (``*.guard``, or ``[[rule]]`` tables) from Elastic's (one ``[rule]`` table)."""
    if f.suffix != ".toml":
        return True
    try:
        text = f.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return False  # the Elastic import reports why it cannot read it
    return _POLICY_TABLE.search(text) is not None


def coverage(
    paths: Sequence[Path],
    plane: Plane,
    *,
    features: Collection[str] | None = None,
    catalog: Sequence[Row] = CATALOG,
) -> CoverageReport:
    """Load every rule file under ``paths`` and say, per rule, whether it can fire on ``plane``.

    Files are read in :func:`~guard.policy.elastic.collect_files` order (``*.toml`` and
    ``*.guard``); Elastic files are imported together, so a repeated rule id is reported once.
    ``features``: the probe features available (None: all of them); ``catalog``: what the
    sensor produces (:data:`guard.lsm.catalog.CATALOG`).
    """
    files = collect_files(paths, POLICY_SUFFIXES)
    ours = {f for f in files if _is_policy_file(f)}
    imported = import_elastic([f for f in files if f not in ours])
    elastic_inline = _inline(Policy(imported.rules, "elastic", ""))
    by_path = {e.path: e for e in imported.entries}
    entries: list[RuleCoverage] = []
    for f in files:
        if f in ours:
            try:
                policy = load_policy(f)
            except PolicyError as exc:
                entries.append(RuleCoverage(str(f), POLICY, None, None, "not imported", reason=str(exc)))
                continue
            inline = _inline(policy)
            entries.extend(
                rule_coverage(r, plane, features=features, kernel_inline=r.id in inline, catalog=catalog)
                for r in policy.rules
            )
            continue
        entry = by_path[str(f)]
        source = entry.source if entry.source in (DETECTION, DEFEND) else "unknown"
        if entry.rule is None:
            entries.append(
                RuleCoverage(
                    entry.path, source, entry.rule_id, entry.name, "not imported", reason=entry.reason
                )
            )
        else:
            rule = entry.rule
            entries.append(
                rule_coverage(
                    rule, plane, features=features, source=source, kernel_inline=rule.id in elastic_inline
                )
            )
    return CoverageReport(plane, tuple(entries))
