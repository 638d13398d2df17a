"""Fixtures of the benchmark tests: the generated rules (loaded) and a generated stream."""

from __future__ import annotations

from typing import Any

import pytest

from guard.bench.synth import generate_events, generate_rules
from guard.policy.loader import Rule
from tests.unit.bench.kit import load_rules


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> tuple[Rule, ...]:
    return load_rules(tmp_path_factory.mktemp("rules"), generate_rules())


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate_events(6000)
