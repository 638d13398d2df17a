from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from guard.config import GuardConfig, apply_env, apply_overrides, config_from_mapping, load_config
from guard.errors import ConfigError


def write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "guard.toml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def test_defaults_are_valid_and_frozen() -> None:
    cfg = GuardConfig()
    assert cfg.fail_mode == "open"
    assert cfg.limits.ring_buffer_pages == 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.fail_mode = "closed"  # type: ignore[misc]  # writing a frozen field on purpose


def test_load_file_overrides_defaults_and_keeps_the_rest(tmp_path: Path) -> None:
    p = write(tmp_path, 'fail_mode = "closed"\n[audit]\npath = "/x/audit.jsonl"\ncheckpoint_seconds = 5\n')
    cfg = load_config(p)
    assert cfg.fail_mode == "closed"
    assert cfg.audit.path == "/x/audit.jsonl"
    assert cfg.audit.checkpoint_seconds == 5.0
    assert isinstance(cfg.audit.checkpoint_seconds, float)
    assert cfg.audit.checkpoint_every == GuardConfig().audit.checkpoint_every


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[audit]\nfsyncc = 1\n", "[audit] fsyncc: unknown key"),
        ("nope = 1\n", ": nope: unknown key"),
        ("[limits]\nmax_rules = 'many'\n", "[limits] max_rules: expected int, got str 'many'"),
        ("[limits]\nmax_rules = true\n", "[limits] max_rules: expected an integer, got True"),
        ("[limits]\nmax_rules = 0\n", "[limits] max_rules: must be positive, got 0"),
        ("[limits]\nring_buffer_pages = 3\n", "ring_buffer_pages: must be a power of two, got 3"),
        (
            "[log]\nlevel = 'loud'\n",
            "[log] level: expected one of 'debug', 'info', 'warning', 'error', got 'loud'",
        ),
        ("audit = 3\n", "audit: expected a table, got int"),
        ("[audit\n", "invalid TOML"),
    ],
)
def test_bad_config_names_file_section_and_key(tmp_path: Path, text: str, expected: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    message = str(info.value)
    assert message.startswith(str(p))
    assert expected in message
    assert "\n" not in message


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, 'fail_mode = "open"\n\n[audit]\npath = \n')
    with pytest.raises(ConfigError, match=r"line 4"):
        load_config(p)


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(write(tmp_path, b"x = '\xff'\n"))


def test_env_overrides_file_and_names_the_variable() -> None:
    cfg = config_from_mapping({"limits": {"max_rules": 10}})
    cfg = apply_env(cfg, {"GUARD_LIMITS_MAX_RULES": "20", "GUARD_FAIL_MODE": "closed", "HOME": "/root"})
    assert cfg.limits.max_rules == 20
    assert cfg.fail_mode == "closed"
    with pytest.raises(ConfigError, match=r"^GUARD_LIMITS_MAX_RULES: expected an integer"):
        apply_env(cfg, {"GUARD_LIMITS_MAX_RULES": "lots"})
    with pytest.raises(ConfigError, match=r"^GUARD_AUDIT_COLOUR: unknown key 'colour' in \[audit\]"):
        apply_env(cfg, {"GUARD_AUDIT_COLOUR": "red"})
    with pytest.raises(ConfigError, match=r"^GUARD_WHATEVER: unknown setting"):
        apply_env(cfg, {"GUARD_WHATEVER": "1"})
    assert apply_env(cfg, {"GUARD_CONFIG": "/etc/other.toml"}) == cfg


def test_overrides_win_and_are_validated() -> None:
    cfg = apply_overrides(GuardConfig(), {"log": {"level": "debug"}})
    assert cfg.log.level == "debug"
    assert cfg.log.format == "auto"
    with pytest.raises(ConfigError, match="command line"):
        apply_overrides(GuardConfig(), {"log": {"level": "chatty"}})


def test_docs_list_every_key_with_its_default() -> None:
    import json

    doc = (Path(__file__).parents[3] / "docs" / "config.md").read_text()
    for key, value in dataclasses.asdict(GuardConfig()).items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, default in items:
            name = f"[{key}] {sub}" if sub else key
            assert f"| `{name}` | `{json.dumps(default)}` |" in doc, name
