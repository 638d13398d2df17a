"""Helpers of the benchmark tests: a policy file from TOML text, a dotted field of an event."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guard.policy.loader import Rule, load_policy


def load_rules(tmp_path: Path, text: str) -> tuple[Rule, ...]:
    """Write ``text`` as a policy file under ``tmp_path`` and load its rules."""
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return load_policy(path).rules


def field(ev: Mapping[str, Any], dotted: str) -> Any:
    """Return the value at ``dotted`` in a nested event, or None."""
    cur: Any = ev
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur
