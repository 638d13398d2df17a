"""Event recordings: JSON Lines of ECS events (nested objects, or dotted flat keys)."""

from __future__ import annotations

import json
from pathlib import Path

from guard.errors import PolicyError

__all__ = ["read_recording"]


def read_recording(path: Path) -> list[dict[str, object]]:
    """Read a recording; a line that is not a JSON object is an error naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read recording: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
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
        events.append(event)
    return events
