"""Alert lines: a kernel decision or an engine match as one ECS JSON line of the alerts file.

:class:`AlertFile` is the agent's alerts file: created 0600 (0640 and group-owned with a control
group), one ``write(2)`` per line, rotated by size (``path`` → ``path.1`` … ``path.K``, the oldest
dropped) and reopened on request (the agent's SIGHUP), for an outside log rotator.
"""

from __future__ import annotations

import grp
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from guard.plan.compiler import RulePlan
from guard.policy.semantics import Event

__all__ = ["AlertFile", "AlertSink", "AlertWriter", "describe", "engine_outcome"]


class AlertSink(Protocol):
    """Where alert lines go: a text stream or an :class:`AlertFile`."""

    def write(self, text: str, /) -> int:
        """Write one or more whole lines."""
        ...

    def flush(self) -> None:
        """Push written lines out."""
        ...


class AlertFile:
    """The alerts file: private, rotated by size, reopened on request; see the module docstring."""

    def __init__(self, path: Path, *, rotate_bytes: int, keep: int, group: str = "") -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.group = group
        self._reopen = False
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        try:
            if self.group:
                os.fchown(fd, -1, grp.getgrnam(self.group).gr_gid)
            os.fchmod(fd, 0o640 if self.group else 0o600)  # also narrows a file an older agent left 0644
        except (OSError, KeyError):
            os.fchmod(fd, 0o600)  # no such group, or not allowed to give it: private
        return fd

    def request_reopen(self) -> None:
        """Reopen the path before the next line (safe from a signal handler: only sets a flag)."""
        self._reopen = True

    def _rotate(self) -> None:
        os.close(self._fd)
        base = str(self.path)
        for n in range(self.keep - 1, 0, -1):
            src = Path(f"{base}.{n}")
            if src.exists():
                src.replace(f"{base}.{n + 1}")
        self.path.replace(f"{base}.1")
        self._fd = self._open()
        self._size = 0

    def write(self, text: str, /) -> int:
        """Write whole lines with one ``write(2)``, rotating first when they would pass the size."""
        if self._reopen:
            self._reopen = False
            os.close(self._fd)
            self._fd = self._open()
            self._size = os.fstat(self._fd).st_size
        data = text.encode()
        if self._size and self._size + len(data) > self.rotate_bytes:
            self._rotate()
        written = os.write(self._fd, data)
        self._size += written
        return written

    def flush(self) -> None:
        """Nothing to flush: every line is already one ``write(2)``."""

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def describe(doc: Mapping[str, Any]) -> str:
    """One line naming an event's object: the file, the destination or the ptrace target."""
    file = doc.get("file") or {}
    if isinstance(file, dict) and file.get("path"):
        return str(file["path"])
    dest = doc.get("destination") or {}
    if isinstance(dest, dict) and dest.get("ip"):
        return f"{dest['ip']}:{dest.get('port', 0)}"
    target = doc.get("target") or {}
    if isinstance(target, dict):
        pid = (target.get("process") or {}).get("pid")
        if pid:
            return f"pid {pid}"
    return ""


def engine_outcome(last: Event) -> str:
    """Return an engine alert's verdict: ``blocked`` when the kernel denied or killed its last event."""
    kestrel = last.get("kestrel") if isinstance(last, dict) else None
    if isinstance(kestrel, dict) and kestrel.get("decision") in ("denied", "killed"):
        return "blocked"
    return "alert"


class AlertWriter:
    """Writes alerts as ECS JSON lines (``rule.*``, ``kestrel.verdict``) to a text stream, or nowhere."""

    def __init__(self, out: AlertSink | None) -> None:
        self.out = out

    def write(
        self, rule_id: str, events: Sequence[Event], outcome: str, *, plan: RulePlan | None, ruleset: str
    ) -> None:
        """Write one alert: the last event with the rule, the verdict, and a sequence's objects."""
        if self.out is None:
            return
        last: dict[str, Any] = dict(events[-1]) if events else {}
        event: dict[str, Any] = dict(last.get("event") or {})
        event.update(kind="alert", outcome=event.get("outcome", "success"))
        doc = {
            **last,
            "event": event,
            "rule": {
                "id": rule_id,
                "name": plan.rule.name if plan else rule_id,
                "ruleset": ruleset,
            },
            "kestrel": {**(last.get("kestrel") or {}), "verdict": outcome, "path": plan.path if plan else ""},
        }
        if len(events) > 1:
            doc["kestrel"]["sequence"] = [describe(e) for e in events]
        self.out.write(json.dumps(doc, default=str, separators=(",", ":")) + "\n")
        self.out.flush()
