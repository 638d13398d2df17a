"""Event recordings: JSON Lines of ECS events (nested objects as Elastic stores them, or dotted flat keys).

A recording the agent writes starts with one header line naming what produced it, so a replay
can say what it is comparing against::

    {"kestrel_recording": {"version": 1, "schema": "ecs", "schema_version": "8.11.0",
                           "ruleset_hash": "<sha256>", "events": 12345}}

The header is optional: any file of ECS events, one JSON object per line, is a recording.

:func:`open_recording` streams one: the header is read at once, the events a batch at a time, so
memory is bounded by the batch, not by the file. A line nested deeper than
:data:`~guard.policy.limits.MAX_DOCUMENT_DEPTH` is refused (file and line named) before ``json``
recurses into it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from guard.errors import PolicyError
from guard.policy.limits import MAX_DOCUMENT_DEPTH, nesting_overflow

__all__ = [
    "HEADER_KEY",
    "Recording",
    "RecordingHeader",
    "RecordingReader",
    "load_recording",
    "open_recording",
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


class RecordingReader:
    """A recording opened for streaming: its header at once, its events in file order, once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: IO[bytes] = path.open("rb")
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read recording: {exc.strerror}") from exc
        self._number = 0
        #: events read so far
        self.count = 0
        self.header: RecordingHeader | None = None
        self._first: dict[str, object] | None = None
        try:
            self._first = self._next()
            if self._first is not None and HEADER_KEY in self._first:
                self.header = _header(path, self._number, self._first[HEADER_KEY])
                self._first = None
        except BaseException:
            self.close()
            raise

    def _next(self) -> dict[str, object] | None:
        """Return the next object of the file (blank lines skipped), or None at its end."""
        path = self.path
        for raw in self._file:
            self._number += 1
            number = self._number
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PolicyError(f"{path}:{number}: not UTF-8 text (byte {exc.start})") from exc
            if not line.strip():
                continue
            if nesting_overflow(line) is not None:
                raise PolicyError(f"{path}:{number}: the event nests deeper than {MAX_DOCUMENT_DEPTH} levels")
            try:
                event = json.loads(line)
            except ValueError as exc:
                raise PolicyError(f"{path}:{number}: not a JSON event: {exc}") from None
            if not isinstance(event, dict):
                raise PolicyError(f"{path}:{number}: not a JSON object")
            return event
        return None

    def events(self) -> Iterator[dict[str, object]]:
        """Yield the events in file order (a later header line is an error naming its line)."""
        first, self._first = self._first, None
        event = first if first is not None else self._next()
        while event is not None:
            if HEADER_KEY in event:
                raise PolicyError(
                    f"{self.path}:{self._number}: {HEADER_KEY}: a header must be the first line"
                )
            self.count += 1
            yield event
            event = self._next()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


def open_recording(path: Path) -> RecordingReader:
    """Open a recording to stream it (use as a context manager); its header is checked now."""
    return RecordingReader(path)


def load_recording(path: Path) -> Recording:
    """Read a whole recording; a line that is not a JSON object is an error naming the file and line."""
    with open_recording(path) as reader:
        return Recording(reader.header, list(reader.events()))


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
