"""Agent configuration: TOML into one tree of frozen dataclasses.

Precedence (resolved by ``guard.cli`` only): defaults < the config file
(``/etc/guard/guard.toml`` or ``--config``) < ``GUARD_<SECTION>_<KEY>`` environment
variables < command-line flags. Every error names the file (or variable), the
section and the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from guard.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AgentConfig",
    "AuditConfig",
    "GuardConfig",
    "LimitsConfig",
    "LogConfig",
    "apply_env",
    "apply_overrides",
    "config_from_mapping",
    "load_config",
]

DEFAULT_CONFIG_PATH: Final = "/etc/guard/guard.toml"

FailMode = Literal["open", "closed"]
_T = typing.TypeVar("_T", bound="DataclassInstance")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """Where the agent keeps its state, and which backend it runs."""

    backend: Literal["auto", "lsm", "compat", "fake"] = "auto"
    pin_dir: str = "/sys/fs/bpf/guard"
    run_dir: str = "/run/guard"
    state_dir: str = "/var/lib/guard"
    control_group: str = ""
    #: a block storm: more than storm_threshold denials by one rule within storm_window_s demote it to
    #: detect, counted only within storm_confirm_s of the agent's start, a deploy or a switch to enforce;
    #: 0 (the default): never demote
    storm_threshold: int = 0
    storm_window_s: float = 10.0
    storm_confirm_s: float = 300.0
    alerts_path: str = "/var/log/guard/alerts.jsonl"
    #: the alerts file is rotated past this size (to alerts_path.1 ... .alerts_keep, the oldest dropped)
    alerts_rotate_bytes: int = 64 * 1024 * 1024
    alerts_keep: int = 5
    #: public keys (*.pub) and trust.toml (threshold) that policy bundles must be signed by
    trust_dir: str = "/etc/guard/trust"
    #: signed policy bundles kept in <state_dir>/bundles besides the active one (for rollback)
    keep_bundles: int = 5

    def __post_init__(self) -> None:
        if self.storm_threshold < 0:
            raise ConfigError(f"[agent] storm_threshold: must be 0 (off) or more, got {self.storm_threshold}")
        _positive("agent", "storm_window_s", self.storm_window_s)
        _positive("agent", "storm_confirm_s", self.storm_confirm_s)
        _positive("agent", "keep_bundles", self.keep_bundles)
        _positive("agent", "alerts_rotate_bytes", self.alerts_rotate_bytes)
        _positive("agent", "alerts_keep", self.alerts_keep)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    """The audit trail: file, checkpoints, rotation and fsync policy."""

    path: str = "/var/log/guard/audit.jsonl"
    key_path: str = "/etc/guard/audit.key"
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    rotate_bytes: int = 64 * 1024 * 1024
    fsync: Literal["deny_and_checkpoint", "every_record", "checkpoint_only"] = "deny_and_checkpoint"

    def __post_init__(self) -> None:
        _positive("audit", "checkpoint_every", self.checkpoint_every)
        _positive("audit", "checkpoint_seconds", self.checkpoint_seconds)
        _positive("audit", "rotate_bytes", self.rotate_bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """Kernel map sizes (become -D cflags) and user-space budgets."""

    max_rules: int = 4096
    max_paths: int = 16384
    ring_buffer_pages: int = 256
    #: the decision ring (denied, would-block, killed), apart from telemetry; a power of two
    decision_ring_buffer_pages: int = 256
    #: the process ring (fork, exec with argv, exit); a power of two
    process_ring_buffer_pages: int = 256
    max_pending_per_rule: int = 10000
    max_pending_per_entity: int = 64
    batch_size: int = 512
    #: Wasm fuel / Lua VM instructions a user-code predicate may spend per event of a batch
    predicate_fuel_per_event: int = 200_000
    #: memory cap of one Wasm or Lua predicate runtime, MiB
    predicate_memory_mb: int = 32

    def __post_init__(self) -> None:
        for name in (
            "max_rules",
            "max_paths",
            "max_pending_per_rule",
            "max_pending_per_entity",
            "batch_size",
            "predicate_fuel_per_event",
            "predicate_memory_mb",
        ):
            _positive("limits", name, getattr(self, name))
        for name in ("ring_buffer_pages", "decision_ring_buffer_pages", "process_ring_buffer_pages"):
            pages = getattr(self, name)
            if pages <= 0 or pages & (pages - 1):
                raise ConfigError(f"[limits] {name}: must be a power of two, got {pages}")


#: Environment variables exec events carry by default (``process.env_vars``): the ones Elastic's
#: Linux rules read (preloading, proxies) and a shell's history settings.
DEFAULT_ENV_VARS: Final = (
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "HISTFILE", "HISTFILESIZE", "HISTSIZE", "HISTCONTROL",
    "PROMPT_COMMAND", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsConfig:
    """What the events carry beyond what every event has."""

    #: environment variable names an exec event carries, ``NAME=value``, in ``process.env_vars``
    #: (an empty list: the kernel reads no environment at all)
    env_vars: tuple[str, ...] = DEFAULT_ENV_VARS

    def __post_init__(self) -> None:
        for name in self.env_vars:
            if not name or "=" in name or "\0" in name:
                raise ConfigError(f"[events] env_vars: {name!r} is not a variable name")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """The ops log (never the audit trail)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardConfig:
    """The whole configuration."""

    fail_mode: FailMode = "open"
    agent: AgentConfig = field(default_factory=AgentConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    log: LogConfig = field(default_factory=LogConfig)


def _positive(section: str, key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"[{section}] {key}: must be positive, got {value}")


def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _dataclass_type(hint: object) -> type | None:
    """Return ``hint`` if it is a dataclass type (a config section), else None."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _check_value(where: str, value: object, hint: object) -> object:
    """Return ``value`` if it fits ``hint`` (int becomes float where a float is expected)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"{where}: expected one of {choices}, got {value!r}")
        return value
    if origin is tuple:  # tuple[str, ...]: a TOML array of that item type
        (item, _) = typing.get_args(hint)
        if not isinstance(value, list | tuple) or not all(isinstance(v, item) for v in value):
            raise ConfigError(f"{where}: expected an array of {item.__name__}, got {value!r}")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported union type")  # pragma: no cover - no such field today
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type[_T], data: Mapping[str, object], source: str, section: str) -> _T:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, object] = {}
    for key, value in data.items():
        where = f"{source}: [{section}] {key}" if section else f"{source}: {key}"
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{where}: unknown key (known: {known})")
        hint = hints[key]
        section_type = _dataclass_type(hint)
        if section_type is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
            kwargs[key] = _build(section_type, value, source, key)
        else:
            kwargs[key] = _check_value(where, value, hint)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_from_mapping(data: Mapping[str, object], source: str = "<config>") -> GuardConfig:
    """Build a validated :class:`GuardConfig` from parsed TOML (missing keys take defaults)."""
    return _build(GuardConfig, data, source, "")


def load_config(path: str | os.PathLike[str]) -> GuardConfig:
    """Read a TOML config file; raise :class:`ConfigError` naming the file, line or key."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    return config_from_mapping(data, str(p))


def _parse_env(where: str, text: str, hint: object) -> object:
    """Parse an environment variable's text by the field's type, naming the variable on error."""
    return _check_value(where, _convert_env(where, text, hint), hint)


def _convert_env(where: str, text: str, hint: object) -> object:
    if hint is int:
        try:
            return int(text, 0)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {text!r}") from None
    if typing.get_origin(hint) is tuple:  # a comma-separated list
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def apply_env(cfg: GuardConfig, env: Mapping[str, str]) -> GuardConfig:
    """Apply ``GUARD_<SECTION>_<KEY>`` (or ``GUARD_<KEY>`` for top-level keys) variables."""
    top = _hints(GuardConfig)
    sections = {name: t for name, hint in top.items() if (t := _dataclass_type(hint)) is not None}
    overrides: dict[str, object] = {}
    for var, text in env.items():
        if not var.startswith("GUARD_") or var == "GUARD_CONFIG":  # GUARD_CONFIG names the file itself
            continue
        rest = var[len("GUARD_") :].lower()
        section, _, key = rest.partition("_")
        if section in sections and key:
            sub_hints = _hints(sections[section])
            if key not in sub_hints:
                raise ConfigError(f"{var}: unknown key {key!r} in [{section}]")
            bucket = overrides.setdefault(section, {})
            if isinstance(bucket, dict):
                bucket[key] = _parse_env(var, text, sub_hints[key])
        elif rest in top and rest not in sections:
            overrides[rest] = _parse_env(var, text, top[rest])
        else:
            raise ConfigError(f"{var}: unknown setting")
    return apply_overrides(cfg, overrides, source="environment")


def apply_overrides(
    cfg: GuardConfig, overrides: Mapping[str, object], *, source: str = "command line"
) -> GuardConfig:
    """Return ``cfg`` with nested overrides (``{"audit": {"path": ...}}``) applied and validated."""
    if not overrides:
        return cfg
    merged: dict[str, object] = dataclasses.asdict(cfg)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = {**current, **value}
        else:
            merged[key] = value
    return config_from_mapping(merged, source)
