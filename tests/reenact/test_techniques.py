"""The technique table itself, checked without root: enough techniques across ATT&CK, each naming a
vendored Elastic rule that imports and was written for it, scripts that write only where they may and
reach no network outside their own namespace, and the report's arithmetic."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from tests.reenact import harness
from tests.reenact.harness import ELASTIC, Imported, Report, Row, import_rules, needed_rules
from tests.reenact.techniques import TACTICS, TECHNIQUES, Technique

#: the brief asks for at least 34 (so that at least 30 survive whatever machine runs them)
MIN_TECHNIQUES = 34
MIN_TACTICS = 8


def _rule_file(path: str) -> dict[str, object]:
    return tomllib.loads((ELASTIC / path).read_text(encoding="utf-8"))


def _threat(data: dict[str, object]) -> list[dict[str, object]]:
    """The [[threat]] tables: top level in protections-artifacts, under [rule] in detection-rules."""
    rule = data.get("rule")
    found = data.get("threat") or (rule.get("threat") if isinstance(rule, dict) else None) or []
    assert isinstance(found, list)
    return found


def _attack_ids(data: dict[str, object]) -> set[str]:
    ids: set[str] = set()
    for threat in _threat(data):
        for tech in threat.get("technique", []):  # type: ignore[attr-defined]
            ids.add(tech["id"])
            ids.update(sub["id"] for sub in tech.get("subtechnique", []))
    return ids


def _tactics(data: dict[str, object]) -> set[str]:
    return {str(t["tactic"]["name"]).lower().replace(" ", "-") for t in _threat(data)}  # type: ignore[index]


def test_enough_techniques_across_tactics() -> None:
    ids = [t.id for t in TECHNIQUES]
    assert len(ids) >= MIN_TECHNIQUES
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert {t.tactic for t in TECHNIQUES} <= set(TACTICS)
    assert len({t.tactic for t in TECHNIQUES}) >= MIN_TACTICS
    for t in TECHNIQUES:
        assert re.fullmatch(r"T\d{4}(\.\d{3})?", t.attack), t.id
        assert t.rules, t.id
        assert not set(t.tools) & set(t.standins), t.id


@pytest.mark.parametrize("t", TECHNIQUES, ids=lambda t: t.id)
def test_rules_are_the_vendored_ones_written_for_the_technique(t: Technique) -> None:
    attack, tactics = set(), set()
    for ref in t.rules:
        data = _rule_file(ref.path)
        rule = data["rule"]
        assert isinstance(rule, dict)
        assert ref.rule_id == rule.get("rule_id", rule.get("id")), ref.path
        attack |= _attack_ids(data)
        tactics |= _tactics(data)
    assert t.attack in attack or t.attack.split(".")[0] in attack, (
        f"{t.id}: {t.attack} not in {sorted(attack)}"
    )
    assert t.tactic in tactics, f"{t.id}: {t.tactic} not in {sorted(tactics)}"


def test_every_rule_imports() -> None:
    imported = import_rules(needed_rules(TECHNIQUES))
    assert imported.missing == {}
    assert len(imported.policy.rules) == len({r.rule_id for t in TECHNIQUES for r in t.rules})


# ------------------------------------------------------------------------ harmlessness, statically

#: programs whose path operands are written (cp: only its last operand; touch: not the -r reference)
_WRITERS = {"rm", "mv", "cp", "mkdir", "touch", "chattr", "setcap", "chmod", "shred", "split", "ln"}
#: options naming a file the program writes
_WRITE_OPTIONS = {"-f", "-out", "-O", "-o"}
_REDIRECT = re.compile(r"(?<![<&\d])>>?\s*(\"?[$/][^\s\"';&|)]*)")


def _writable(t: Technique, path: str) -> bool:
    path = path.strip('"')
    if path.startswith(("$T/", "$SHM/")) or path in ("$T", "$SHM", "/dev/null"):
        return True
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in t.overlays)


def _commands(script: str) -> list[list[str]]:
    """Simple commands of a script, redirections left out (the redirect check sees those)."""
    out: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:  # a line inside a quoted perl program
            continue
        command: list[str] = []
        redirect = False
        for tok in [*tokens, ";"]:
            if redirect:
                redirect = False
            elif set(tok) <= set("<>&"):
                redirect = tok not in ("&", "&&")
                if not redirect and command:
                    out.append(command)
                    command = []
            elif tok in (";", ";;", "||", "|", "do", "then", "(", ")"):
                if command:
                    out.append(command)
                command = []
            else:
                command.append(tok)
    return out


def _written(command: list[str]) -> list[str]:
    name, args = Path(command[0]).name, command[1:]
    written = [a for a, prev in zip(args, ["", *args], strict=False) if prev in _WRITE_OPTIONS]
    written += [a.split("=", 1)[1] for a in args if a.startswith("of=")]
    if name in _WRITERS:
        operands = [
            a for a, prev in zip(args, ["", *args], strict=False) if not a.startswith("-") and prev != "-r"
        ]
        written += operands[-1:] if name == "cp" else operands
    return [w for w in written if "/" in w or w.startswith("$")]


@pytest.mark.parametrize("t", TECHNIQUES, ids=lambda t: t.id)
def test_scripts_write_only_in_their_own_places(t: Technique) -> None:
    targets = [m.group(1) for m in _REDIRECT.finditer(t.script)]
    targets = [p for p in targets if not p.startswith("/dev/tcp/")]  # a connect, not a file
    for command in _commands(t.script):
        targets += _written(command)
    outside = [p for p in targets if not _writable(t, p)]
    assert outside == [], f"{t.id} writes outside $T, $SHM and its overlays: {outside}"


_ADDRESSES = re.compile(
    r"(?:/dev/tcp/|https?://|@|inet_aton\(\$i\)|\$i=\")\[?([0-9A-Za-z:._-]+)"
    r"|\b((?:\d{1,3}\.){3}\d{1,3})\b"
)


@pytest.mark.parametrize("t", TECHNIQUES, ids=lambda t: t.id)
def test_only_loopback_outside_an_isolated_network(t: Technique) -> None:
    peers = {a or b for a, b in _ADDRESSES.findall(t.script)} - {""}
    remote = {p for p in peers if not p.startswith(("127.", "localhost"))}
    if remote:
        assert t.isolated_network, f"{t.id} names {sorted(remote)} outside a network namespace of its own"


# ------------------------------------------------------------------------ the report


def test_a_technique_alerts_only_when_every_rule_did() -> None:
    both = next(t for t in TECHNIQUES if len(t.rules) >= 2)
    one, two = (r.rule_id for r in both.rules[:2])
    imported = import_rules(needed_rules([both]))
    rows = (
        Row(both, (one, two, "another-rule")),
        Row(both, (two,)),
        Row(both, ()),
        Row(both, skipped="missing program: x"),
    )
    report = Report(rows, imported, "compat")
    assert [r.hit for r in rows] == [True, False, False, False]
    assert [r.partial for r in rows] == [False, True, False, False]
    assert len(report.ran) == 3
    assert report.ratio == pytest.approx(1 / 3)
    table = report.render()
    for result in ("ALERTED", "partial", "missed", "skipped"):
        assert result in table
    assert "also alerted: another-rule" in table
    assert "alerted: 1 of 3 techniques run (33%)" in table


def test_an_unimported_rule_is_reported_with_the_reason() -> None:
    t = TECHNIQUES[0]
    empty = Imported(import_rules([]).policy, {t.rules[0].rule_id: "query: syntax error"})
    table = Report((Row(t, ()),), empty, "lsm").render()
    assert "not imported (query: syntax error)" in table


class _Recorder:
    """Stands in for libc in the harness: records unshare and mount calls, succeeds."""

    def __init__(self) -> None:
        self.unshares: list[int] = []
        #: (source, target, fstype, flags)
        self.mounts: list[tuple[bytes, bytes, bytes | None, int]] = []

    def unshare(self, flags: int) -> int:
        self.unshares.append(flags)
        return 0

    def mount(
        self, source: bytes, target: bytes, fstype: bytes | None, flags: int, data: bytes | None
    ) -> int:
        self.mounts.append((source, target, fstype, flags))
        return 0


@pytest.mark.parametrize("t", TECHNIQUES, ids=lambda t: t.id)
def test_the_child_is_placed_in_the_namespaces_and_overlays_its_technique_asks_for(
    t: Technique, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps a script harmless is done before it runs: every overlay is a fresh tmpfs in a
    private mount namespace, whatever else the technique asks for (a resolver, a network)."""
    recorder = _Recorder()
    monkeypatch.setattr(harness, "libc", recorder)
    for name in ("setgroups", "setgid", "setuid"):
        monkeypatch.setattr(os, name, lambda *_: None)
    resolv_conf = tmp_path / "resolv.conf" if t.resolver else None
    harness._placement(t, tmp_path, resolv_conf)()  # the child's own setup, run here
    assert (tmp_path / "cgroup.procs").read_text() == "0"
    unshares, mounts = recorder.unshares, recorder.mounts
    private = bool(t.overlays or t.resolver)
    flags = unshares[0] if unshares else 0
    assert bool(flags & 0x00020000) == private  # CLONE_NEWNS
    assert bool(flags & 0x40000000) == t.isolated_network  # CLONE_NEWNET
    tmpfs = [target.decode() for _, target, fstype, _ in mounts if fstype == b"tmpfs"]
    assert tmpfs == list(t.overlays)
    if private:
        assert mounts[0][1] == b"/"  # / made private first (MS_PRIVATE), before any other mount
        assert mounts[0][3] & 0x40000
    binds = [(source, target) for source, target, _, flags in mounts if flags & 0x1000]  # MS_BIND
    assert binds == ([(bytes(resolv_conf), b"/etc/resolv.conf")] if resolv_conf else [])
