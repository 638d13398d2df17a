"""Where decisions are written: the :class:`AuditSink` protocol, and :class:`MemoryAudit` for tests."""

from __future__ import annotations

import threading
from typing import Protocol

from guard.audit.record import Decision

__all__ = ["AuditSink", "MemoryAudit"]


class AuditSink(Protocol):
    """The narrow interface actions write the audit trail through (an AuditWriter fits)."""

    def append(self, decision: Decision, /) -> object:
        """Record one decision."""


class MemoryAudit:
    """Keeps decisions in memory (tests, demo without a log)."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()

    def append(self, decision: Decision, /) -> object:
        """Record one decision."""
        with self._lock:
            self.decisions.append(decision)
        return decision
