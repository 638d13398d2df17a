"""Where decisions are written: the :class:`AuditSink` protocol, and :class:`MemoryAudit` for tests."""

from __future__ import annotations

import threading
from typing import Protocol

from guard.audit.record import Decision, Kind

__all__ = ["AuditSink", "MemoryAudit"]


class AuditSink(Protocol):
    """The narrow interface actions write the audit trail through (an AuditWriter fits)."""

    def append(self, decision: Decision, /) -> object:
        """Record one decision."""

    def checkpoint(self) -> object:
        """Sign the chain head now (a record that must not wait for the next due checkpoint)."""


class MemoryAudit:
    """Keeps decisions in memory (tests, demo without a log); a checkpoint is kept as a decision too."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()

    def append(self, decision: Decision, /) -> object:
        """Record one decision."""
        with self._lock:
            self.decisions.append(decision)
        return decision

    def checkpoint(self) -> object:
        """Record a requested checkpoint (what the writer would sign)."""
        return self.append(Decision(Kind.CHECKPOINT, reason="requested"))
