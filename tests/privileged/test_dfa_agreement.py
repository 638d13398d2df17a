"""The in-kernel DFA walk agrees with the user-space matcher on 10,000+ generated paths.

Real files, real opens: every generated path is created on a private tmpfs and opened by one
child in the test's cgroup, with file_open in detect and "emit every call" set, so each open
yields exactly one event carrying the kernel's decision and rule. The same policy's tables are
walked in user space (``DfaTables.walk``) and the patterns evaluated by their plain definition
(``dfa.reference_match``); all three must agree on every path.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.lsm import abi, dfa
from guard.lsm.abi import Counter, Decision, Match, ModeId
from guard.lsm.bcc_backend import LsmBackend
from guard.lsm.verdicts import Action, KernelPolicy, PathKind, PathRule, build_tables
from guard.model import Hook
from tests.privileged.kit import delta, govern, tmpfs

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.requires_feature("lsm_program"),
    pytest.mark.requires_feature("bcc"),
]

PATHS = 10_000
BATCH = 250  # opens per round trip: well under what the ring buffer holds between two polls

#: (kind, pattern, rule id, action, case-insensitive): denies and notifies, anchored and floating.
RULES: tuple[tuple[PathKind, str, int, Action, bool], ...] = (
    ("contains", ".ssh/id_", 101, Action.DENY, False),
    ("glob", "*/secret*/*.key", 102, Action.DENY, False),
    ("contains", "PASSWD", 103, Action.DENY, True),
    ("glob", "*[x]*", 104, Action.DENY, False),
    ("contains", "\udcff\udcfe", 105, Action.DENY, False),
    ("glob", "*/?/??", 106, Action.DENY, False),
    ("glob", "*--*-?", 107, Action.DENY, False),
    ("glob", "*/a?b*/*", 201, Action.NOTIFY, False),
    ("contains", "tmp/x", 202, Action.NOTIFY, False),
    ("glob", "*.PEM*", 203, Action.NOTIFY, True),
    ("contains", "aaaa", 204, Action.NOTIFY, False),
    ("glob", "*/key*", 205, Action.NOTIFY, False),
)

TOKENS = (
    b"a", b"b", b"ab", b"a?b", b"aab", b"aa", b"x", b"z", b"zz", b"tmp", b".ssh", b"id_", b"id_rsa",
    b"ID_", b"secret", b"Secret", b"key", b".key", b".pem", b".PeM", b"passwd", b"PassWd", b"pAsSwD",
    b"[x]", b"[", b"]", b"*", b"?", b"-", b"--", b"\xff", b"\xfe", b"\xff\xfe", b"\xc3\xa9", b"_", b".",
)  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "fs") as d:
        yield Path(os.path.realpath(d))


def _token(rng: random.Random) -> bytes:
    """Mostly plain names (of any length up to 40), sometimes a token some pattern cares about."""
    if rng.random() < 0.3:
        return rng.choice(TOKENS)
    return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(1, 40)))


def generate(base: bytes, count: int, seed: int = 1234) -> list[bytes]:
    """``count`` distinct creatable paths under ``base`` (no file is also a directory), all < PATH_MAX."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    files: set[bytes] = set()
    dirs: set[bytes] = set()
    out: list[bytes] = []
    while len(out) < count:
        parts = []
        for _ in range(rng.randint(1, 7)):
            name = b"".join(_token(rng) for _ in range(rng.randint(1, 4)))
            if name in (b".", b".."):
                name += b"_"
            parts.append(name)
        path = base + b"/" + b"/".join(parts)
        if len(path) >= abi.PATH_MAX - 1:
            continue
        parents = [base + b"/" + b"/".join(parts[:i]) for i in range(1, len(parts))]
        if path in files or path in dirs or any(p in files for p in parents):
            continue
        files.add(path)
        dirs.update(parents)
        out.append(path)
    return out


def expected(patterns: list[dfa.Pattern], actions: dict[int, Action], path: bytes) -> tuple[int, int]:
    """(decision, rule id) the definition gives: the smallest deny, else the smallest notify, else none."""
    ids = dfa.reference_match(patterns, path)
    denies = sorted(i for i in ids if actions[i] is Action.DENY)
    notifies = sorted(i for i in ids if actions[i] is Action.NOTIFY)
    if denies:
        return Decision.WOULD_BLOCK, denies[0]
    if notifies:
        return Decision.ALLOWED, notifies[0]
    return Decision.ALLOWED, 0


def open_all_in(scope: Path, plane: LsmBackend, paths: list[bytes]) -> dict[bytes, list[abi.Event]]:
    """One child in ``scope`` opens every path, ``BATCH`` at a time; the ring buffer is drained in between."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(go_w)
            os.close(done_r)
            (scope / "cgroup.procs").write_text("0")
            for start in range(0, len(paths), BATCH):
                if os.read(go_r, 1) != b"g":
                    break
                for path in paths[start : start + BATCH]:
                    os.close(os.open(path, os.O_RDONLY))
                os.write(done_w, b"d")
        except BaseException:
            code = 1
        os._exit(code)
    os.close(go_r)
    os.close(done_w)
    seen: dict[bytes, list[abi.Event]] = {}
    try:
        for _ in range(0, len(paths), BATCH):
            os.write(go_w, b"g")
            assert os.read(done_r, 1) == b"d", "the opening child failed"
            for event in plane.poll_events(0):
                if event.hook == Hook.FILE_OPEN.abi and event.tgid == pid:
                    seen.setdefault(event.path, []).append(event)
    finally:
        os.close(go_w)
        os.close(done_r)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"opening child: status {status}"
    assert os.WEXITSTATUS(status) == 0, f"opening child: status {status}"
    return seen


def test_kernel_dfa_agrees_with_user_space_on_10000_paths(plane: LsmBackend, scope: Path, root: Path) -> None:
    rules = tuple(PathRule(Hook.FILE_OPEN, k, p, r, a, ci) for k, p, r, a, ci in RULES)
    policy = KernelPolicy(paths=rules, hook_flags={Hook.FILE_OPEN: abi.HF_EMIT_ALL})
    tables = build_tables(policy)
    program = tables.dfas[Hook.FILE_OPEN]
    patterns = [
        (dfa.contains if k == "contains" else dfa.glob)(os.fsencode(p), r, case_insensitive=ci)
        for k, p, r, _, ci in RULES
    ]
    actions = {r: a for _, _, r, a, _ in RULES}

    paths = generate(os.fsencode(str(root)), PATHS)
    for path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb"):
            pass
    want = {p: expected(patterns, actions, p) for p in paths}
    for path, (_, rule) in want.items():  # the user-space table walk: the same tables the kernel reads
        first = program.tables.walk(path).first
        assert (program.rules[first - 1][0] if first else 0) == rule, path

    govern(plane, scope, policy, Hook.FILE_OPEN, ModeId.DETECT)
    before = plane.counters(Hook.FILE_OPEN)
    seen = open_all_in(scope, plane, paths)
    counts = delta(before, plane.counters(Hook.FILE_OPEN))

    assert counts[Counter.RINGBUF_DROPS] == 0
    assert sorted(seen) == sorted(paths), "every open gave exactly one event, for its own path"
    wrong = []
    for path, events in seen.items():
        assert len(events) == 1, (path, len(events))
        event = events[0]
        got = (Decision(event.decision), event.rule_id)
        if got != want[path] or event.match not in (Match.DFA, Match.ALL):
            wrong.append((path, got, want[path], Match(event.match).name))
    assert not wrong, f"{len(wrong)} of {len(paths)} disagree, e.g. {wrong[:5]}"
    outcomes = [d for d, _ in want.values()]
    # The generated corpus exercises every outcome, and most rules (not a vacuous agreement).
    assert outcomes.count(Decision.WOULD_BLOCK) > 500
    assert sum(1 for d, r in want.values() if d == Decision.ALLOWED and r) > 500
    assert sum(1 for d, r in want.values() if r == 0) > 500
    assert len({r for _, r in want.values()}) >= 10
    assert counts[Counter.WOULD_BLOCK] == outcomes.count(Decision.WOULD_BLOCK)
