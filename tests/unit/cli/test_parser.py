"""guardctl's parser: every command module registers its subcommands, each with a handler."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points

import pytest

from guard.cli import build_parser, main


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [leaf for name, p in subs[0].choices.items() for leaf in _leaves(p, (*path, name))]


def test_every_command_has_a_handler_and_help() -> None:
    parser = build_parser()
    leaves = _leaves(parser)
    names = {" ".join(leaf) for leaf in leaves}
    assert {
        "probe",
        "btf offset",
        "audit verify",
        "bundle deploy",
        "rollback",
        "enforce",
        "detect",
        "off",
    } <= names
    assert {"confirm", "status", "demo", "bench kernel", "eql check", "config show", "policy test"} <= names
    for leaf in leaves:
        sub = parser
        for name in leaf:
            action = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
            sub = action.choices[name]
        assert callable(sub.get_default("handler")), leaf
        assert sub.format_help()


def test_the_modes_keep_their_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["enforce", "--rule", "r", "--confirm-within", "5", "--json"])
    assert (args.command, args.rule, args.confirm_within, args.json) == ("enforce", "r", 5.0, True)
    assert parser.parse_args(["detect"]).confirm_within is None
    with pytest.raises(SystemExit):
        parser.parse_args(["off", "--confirm-within", "5"])


def test_guardctl_is_guard_cli_main() -> None:
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "guardctl"]
    assert ep.value == "guard.cli:main"
    assert ep.load() is main
