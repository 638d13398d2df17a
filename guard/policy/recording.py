"""Event recordings: JSON Lines of ECS events (nested objects as Elastic stores them, or dotted flat keys).

A recording the agent writes starts with one header line naming what produced it, so a replay
can say what it is comparing against::

    {"kestrel_recording": {"version": 1, "schema": "ecs", "schema_version": "8.11.0",
                           "ruleset_hash": "<sha256>", "events": 12345}}

The header is optional: any file of ECS events, one JSON object per line, is a recording.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guard.errors import PolicyError

__all__ = [
    "HEADER_KEY",
    "Recording",
    "RecordingHeader",
    "load_recording",
    "read_recording",
    "write_recording",
]

HEADER_KEY: Final = "kestrel_recording"
FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    """What produced a recording: the schema (and its version) and the rule set it ran."""

    schema: str
    schema_version: str
    ruleset_hash: str
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, object]:
        """Return the header's JSON object (without the outer key)."""
        return {
            "version": self.version,
            "schema": self.schema,
            "schema_version": self.schema_version,
            "ruleset_hash": self.ruleset_hash,
        }


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording's header (None for a plain event file) and its events in file order."""

    header: RecordingHeader | None
    events: list[dict[str, object]]


def _header(path: Path, number: int, raw: object) -> RecordingHeader:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{path}:{number}: {HEADER_KEY}: expected an object")
    values: dict[str, str] = {}
    for key in ("schema", "schema_version", "ruleset_hash"):
        value = raw.get(key)
        if not isinstance(value, str):
            raise PolicyError(f"{path}:{number}: {HEADER_KEY}.{key}: expected a string, got {value!r}")
        values[key] = value
    version = raw.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise PolicyError(f"{path}:{number}: {HEADER_KEY}.version: {version!r} is not {FORMAT_VERSION}")
    return RecordingHeader(values["schema"], values["schema_version"], values["ruleset_hash"])


def load_recording(path: Path) -> Recording:
    """Read a recording; a line that is not a JSON object is an error naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read recording: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    header: RecordingHeader | None = None
    events: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise PolicyError(f"{path}:{number}: not a JSON event: {exc}") from None
        if not isinstance(event, dict):
            raise PolicyError(f"{path}:{number}: not a JSON object")
        if HEADER_KEY in event:
            if events or header is not None:
                raise PolicyError(f"{path}:{number}: {HEADER_KEY}: a header must be the first line")
            header = _header(path, number, event[HEADER_KEY])
            continue
        events.append(event)
    return Recording(header, events)


def read_recording(path: Path) -> list[dict[str, object]]:
    """Return a recording's events (the header, if any, is checked and dropped)."""
    return load_recording(path).events


def write_recording(path: Path, events: Iterable[Mapping[str, object]], header: RecordingHeader) -> int:
    """Write a recording (header line, then one event per line) atomically; return the event count."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps({HEADER_KEY: header.to_json()}, sort_keys=True) + "\n")
            for event in events:
                f.write(json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PolicyError(f"{path}: cannot write recording: {exc.strerror}") from exc
    return count
