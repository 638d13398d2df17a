"""Events streamed through the engine a batch at a time: memory bounded by the batch, not the input."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from guard.policy.engine import Alert, Engine
from guard.policy.semantics import Event

__all__ = ["stream_alerts"]


def stream_alerts(engine: Engine, events: Iterable[Event], *, batch: int) -> list[Alert]:
    """Run ``events`` (any iterable, read once) in batches and end the stream, as ``Engine.run`` does.

    The batches are the ones ``Engine.run`` would cut from a list, so the alerts are identical:
    every alert in completion order.
    """
    alerts: list[Alert] = []
    it = iter(events)
    while chunk := list(islice(it, batch)):
        alerts.extend(engine.process(chunk))
    alerts.extend(engine.flush())
    alerts.sort(key=lambda a: a.seq)
    return alerts
