"""The streaming form of ``sample``: per join key, each filter's first hits, and a choice once it is final.

Elasticsearch samples a finished data set: per join key, each of the N filters' first N matching
events (in the order events were stored), then the first choice of N distinct events, one per
filter, in filter order (:func:`~guard.policy.evaluator.match_sample`). A stream is never finished,
but that choice is often already final: when the backtracking reaches a complete choice before it
would need a candidate a filter has not seen yet, no later event can change it. :class:`SampleMatcher`
emits a sample at that moment (events fed in arrival order), and the rest at the end of the stream,
so it emits exactly the offline evaluator's samples. One sample per key: a key that produced one
is remembered and ignores later events.

Bounded: at most ``max_keys`` keys with candidates (the least recently fed is forgotten, or the new
one refused under ``drop_new``) and ``max_done`` keys remembered as done; each overflow is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from guard.policy.evaluator import CompiledStep, key_tuples, match_sample, sample_key_order
from guard.policy.semantics import Event, Value

__all__ = ["SampleCounters", "SampleMatcher"]

Key = tuple[Value, ...]
#: a candidate: (arrival number, event, event time)
_Candidate = tuple[int, Event, float]


class SampleCounters(Protocol):
    """The per-rule counters a matcher updates (the engine's ``RuleStats``)."""

    partials: int
    evicted_lru: int
    refused: int
    keys_evicted: int


class SampleMatcher:
    """One sample rule's state; :meth:`hit` records a filter's match, :meth:`drain` feeds them in order."""

    def __init__(
        self,
        steps: Sequence[CompiledStep],
        counters: SampleCounters,
        *,
        max_keys: int,
        max_done: int,
        drop_new: bool,
        keys: Callable[[int, Event], Sequence[Key]] | None = None,
    ) -> None:
        self.steps = tuple(steps)
        self.n = len(self.steps)
        self.counters = counters
        self.max_keys = max_keys
        self.max_done = max_done
        self.drop_new = drop_new
        self._keys = keys or (lambda s, ev: key_tuples(self.steps[s], ev))
        self.candidates: dict[Key, list[list[_Candidate]]] = {}
        self.done: dict[Key, None] = {}
        self.pending: list[tuple[int, int, Event, float]] = []  # (arrival, filter, event, time)

    def hit(self, arrival: int, s: int, ev: Event, t: float) -> None:
        """Record that filter ``s`` matched an event (fed to the state by :meth:`drain`)."""
        self.pending.append((arrival, s, ev, t))

    def drain(self) -> list[tuple[Key, tuple[Event, ...], float]]:
        """Feed the recorded matches in arrival order; return the samples that became final."""
        out: list[tuple[Key, tuple[Event, ...], float]] = []
        if not self.pending:
            return out
        hits, self.pending = sorted(self.pending, key=lambda h: (h[0], h[1])), []
        for arrival, s, ev, t in hits:
            for key in self._keys(s, ev):
                found = self._feed(key, s, (arrival, ev, t))
                if found is not None:
                    out.append(found)
        return out

    def flush(self) -> list[tuple[Key, tuple[Event, ...], float]]:
        """End of stream: the remaining keys' samples, by ascending key (as Elasticsearch orders them)."""
        out = self.drain()
        for key in sorted(self.candidates, key=sample_key_order):
            per = self.candidates[key]
            chosen = match_sample([[c[0] for c in lst] for lst in per])
            if chosen is not None:
                out.append(self._sample(key, per, chosen))
        self.candidates.clear()
        self.counters.partials = 0
        return out

    def _feed(self, key: Key, s: int, cand: _Candidate) -> tuple[Key, tuple[Event, ...], float] | None:
        if key in self.done:
            return None
        per = self.candidates.pop(key, None)
        if per is None:
            if len(self.candidates) >= self.max_keys:
                if self.drop_new:
                    self.counters.refused += 1
                    return None
                del self.candidates[next(iter(self.candidates))]
                self.counters.evicted_lru += 1
            per = [[] for _ in range(self.n)]
        self.candidates[key] = per  # most recently fed last
        if len(per[s]) >= self.n:
            self.counters.partials = len(self.candidates)
            return None
        per[s].append(cand)
        chosen = match_sample([[c[0] for c in lst] for lst in per], [len(lst) < self.n for lst in per])
        if chosen is None:
            self.counters.partials = len(self.candidates)
            return None
        del self.candidates[key]
        self.done[key] = None
        if len(self.done) > self.max_done:
            del self.done[next(iter(self.done))]
            self.counters.keys_evicted += 1
        self.counters.partials = len(self.candidates)
        return self._sample(key, per, chosen)

    @staticmethod
    def _sample(
        key: Key, per: list[list[_Candidate]], chosen: tuple[int, ...]
    ) -> tuple[Key, tuple[Event, ...], float]:
        by_arrival = {c[0]: c for lst in per for c in lst}
        picked = [by_arrival[a] for a in chosen]
        return key, tuple(c[1] for c in picked), max(c[2] for c in picked)
