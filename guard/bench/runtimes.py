"""``guardctl bench runtimes``: per-event cost of each predicate runtime on the same batch, in one run.

The batch is the first ``batch`` process events of the engine benchmark's synthetic stream
(:func:`guard.bench.synth.generate_events`). For each condition, every runtime decides the
same events:

- ``python``: the codegen predicate called per event (the engine's default path), the baseline;
- ``wasm`` and ``lua``: :meth:`BatchPredicate.decide` end to end (columns fetched from the events,
  escapes checked, host leaves, one call into the runtime, the bitmap back), and the runtime call
  alone on columns built beforehand (``call`` column).

Each figure is the best of ``repeats`` timed runs. The answers of every runtime must be equal to
the baseline's (``agree``), or the benchmark fails. User functions (``entropy``, the same
algorithm in Lua and in WAT) have no Python form, so their rows have no baseline ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

from guard.bench.synth import generate_events
from guard.errors import GuardError
from guard.policy.analyzer import compile_query
from guard.policy.codegen import compile_predicate
from guard.policy.predicates import backend
from guard.policy.predicates.abi import Budget, NativeValue, UserModule
from guard.policy.predicates.batch import BatchPredicate
from guard.policy.schema import ECS
from guard.policy.semantics import Event

__all__ = ["CONDITIONS", "RuntimeRow", "render_runtime_benchmark", "run_runtime_benchmark"]

#: (name, EQL condition over process events); ``{lang}`` is replaced by each runtime's module language
CONDITIONS: Final = (
    ("equality", 'process.name == "curl"'),
    ("typical rule", 'process.name : ("*sh", "python*") and process.executable like~ "/tmp/*" or '
                     'process.name in ("curl", "wget", "nc") and process.pid > 100 or '
                     'startsWith(process.command_line, "/usr/bin/sudo")'),
    ("wildcards", 'process.command_line : ("*curl*|*sh*", "*base64 -d*", "*/dev/tcp/*", "*wget http*")'),
    ("user function", "{lang}:entropy(process.command_line) > 4.5"),
)  # fmt: skip

#: the example user modules shipped with the bundled policies (entropy in Lua and in WAT)
EXAMPLES: Final = Path(__file__).resolve().parents[2] / "policies" / "modules"


@dataclass(frozen=True, slots=True)
class RuntimeRow:
    """One condition on one runtime."""

    condition: str
    runtime: str
    us_per_event: float  # end to end
    call_us_per_event: float | None  # the runtime call alone (wasm, lua)
    ratio: float | None  # us_per_event / python's on the same condition
    matched: int
    escaped: int
    agree: bool

    def to_json(self) -> dict[str, object]:
        """Return the row as a dict."""
        return {
            "condition": self.condition, "runtime": self.runtime, "us_per_event": round(self.us_per_event, 4),
            "call_us_per_event": None if self.call_us_per_event is None else round(self.call_us_per_event, 4),
            "ratio_vs_python": None if self.ratio is None else round(self.ratio, 3),
            "matched": self.matched, "escaped": self.escaped, "agree": self.agree,
        }  # fmt: skip


def _each(fn: Callable[[Event], bool], events: Sequence[Event]) -> list[bool]:
    return [fn(ev) for ev in events]


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _modules() -> tuple[UserModule, ...]:
    try:
        return tuple(
            UserModule(lang, EXAMPLES / f"entropy.{suffix}", (EXAMPLES / f"entropy.{suffix}").read_bytes())
            for lang, suffix in (("lua", "lua"), ("wasm", "wat"))
        )
    except OSError as exc:
        raise GuardError(f"bench runtimes: {exc.filename}: {exc.strerror}") from None


def _process_events(batch: int) -> list[Event]:
    events: list[Event] = [e for e in generate_events(batch * 3) if e["event"]["category"] == "process"]
    if len(events) < batch:
        raise GuardError(f"bench runtimes: only {len(events)} process events generated")
    return events[:batch]


def run_runtime_benchmark(
    batch: int = 4096, repeats: int = 7, runtimes: Sequence[str] = ("wasm", "lua")
) -> list[RuntimeRow]:
    """Measure every condition on python and on each runtime; raise when any runtime disagrees."""
    events = _process_events(batch)
    modules = _modules()
    rows: list[RuntimeRow] = []
    for name, text in CONDITIONS:
        user = "{lang}" in text
        want: list[bool] | None = None
        base: float | None = None
        if not user:
            cond = compile_query(f"process where {text}", ECS).steps[0].condition
            fn = compile_predicate(cond, ECS).fn
            want = [fn(ev) for ev in events]
            base = _best(partial(_each, fn, events), repeats) / batch * 1e6
            rows.append(RuntimeRow(name, "python", base, None, 1.0, sum(want), 0, True))
        for rt in runtimes:
            cond = compile_query(f"process where {text.replace('{lang}', rt)}", ECS).steps[0].condition
            bp = BatchPredicate(cond, backend(rt), schema=ECS, budget=Budget(), modules=modules, name="bench")
            got = bp.decide(events)
            if want is None:
                want = got  # user functions: the first runtime is the reference for the others
            agree = got == want
            if not agree:
                raise GuardError(f"bench runtimes: {rt} disagrees with the baseline on '{name}'")
            end_to_end = _best(partial(bp.decide, events), repeats) / batch * 1e6
            lw = bp.lowered
            columns: list[list[NativeValue]] = [[g(ev) for ev in events] for g in lw.getters]  # type: ignore[misc]
            host = [[h(ev) for ev in events] for h in lw.host]
            escaped = bp.stats.escaped // max(bp.stats.batches, 1)
            call = None
            if not escaped:
                call = _best(partial(bp.compiled.run, columns, host, batch), repeats) / batch * 1e6
            ratio = end_to_end / base if base else None
            rows.append(RuntimeRow(name, rt, end_to_end, call, ratio, sum(got), escaped, agree))
    return rows


def render_runtime_benchmark(rows: Sequence[RuntimeRow], batch: int) -> str:
    """Render the rows as a table."""
    lines = [
        f"predicate runtimes: {batch} process events per batch, best of the timed runs",
        f"{'CONDITION':<15} {'RUNTIME':<8} {'US/EVENT':>9} {'CALL US/EV':>11} {'VS PYTHON':>10} "
        f"{'MATCHED':>8} {'ESCAPED':>8}",
    ]
    for r in rows:
        call = f"{r.call_us_per_event:.3f}" if r.call_us_per_event is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        lines.append(
            f"{r.condition:<15} {r.runtime:<8} {r.us_per_event:>9.3f} {call:>11} {ratio:>10} {r.matched:>8} "
            f"{r.escaped:>8}"
        )
    lines.append("every runtime gave the baseline's answers on every event")
    return "\n".join(lines)
