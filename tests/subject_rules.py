"""Generated rules that test the caller and the destination, and the event a call is judged on.

Shared by the differential tests: against the tables the kernel gets, in the unit suite
(``tests/unit/plan/test_subject_rules.py``), and against the loaded planes, in the kernel suite
(``tests/privileged/test_subject_agreement.py``). Every generated form is one the compiler makes
kernel-inline: the names, parents and uids come from small pools so that the rules share their
tests of the caller (the kernel tells 64 apart), and two rules share each port (a key holds two).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from guard.model import Hook
from guard.plan.compiler import CompiledPolicy, compile_policy
from guard.policy.loader import load_policy

NAMES = ("nc", "curl", "bash", "python3", "socat", "wget")
PARENTS = ("bash", "sh", "sshd", "cron")
UIDS = (0, 1000, 33)
PORTS = tuple(range(20000, 20120))
IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def _name_test(rng: random.Random, field: str, pool: tuple[str, ...]) -> str:
    form = rng.randrange(5)
    if form == 0:
        return f'{field} == "{rng.choice(pool)}"'
    if form == 1:
        return f'{field} != "{rng.choice(pool)}"'
    if form == 2:
        return f'{field} in ("{pool[0]}", "{pool[1]}")'
    if form == 3:
        return f'not {field} in ("{pool[1]}", "{pool[2]}")'
    return f'{field} : "{rng.choice(pool).upper()}"'


def generated_rule(rng: random.Random, port: int) -> str:
    """One rule: a destination port (sometimes an address too) and one to three caller tests."""
    tests = []
    if rng.random() < 0.8:
        tests.append(_name_test(rng, "process.name", NAMES))
    if rng.random() < 0.5:
        tests.append(_name_test(rng, "process.parent.name", PARENTS))
    if rng.random() < 0.4 or not tests:
        uid = rng.choice(UIDS)
        tests.append(f'user.id == "{uid}"' if rng.random() < 0.7 else f'user.id != "{uid}"')
    obj = f"destination.port == {port}"
    if rng.random() < 0.3:
        obj += f' and destination.ip == "{rng.choice(IPS)}"'
    rng.shuffle(tests)
    return "network where " + " and ".join([obj, *tests])


def generated_rules(rng: random.Random, count: int = 240) -> list[tuple[str, str]]:
    """``count`` (id, query) pairs, two per port."""
    return [(f"g{i}", generated_rule(rng, PORTS[i // 2])) for i in range(count)]


def compiled_rules(tmp_path: Path, rules: list[tuple[str, str]], action: str = "block") -> CompiledPolicy:
    """Write the rules as a policy file and compile it."""
    text = ""
    for rid, query in rules:
        text += (
            f'[[rule]]\nid = "{rid}"\nname = "{rid}"\nseverity = "high"\naction = "{action}"\n'
            f"query = '''{query}'''\n\n"
        )
    (tmp_path / "p.toml").write_text(text)
    return compile_policy(load_policy(tmp_path / "p.toml"))


def connect_event(name: str, parent: str, uid: int, ip: str, port: int) -> dict[str, Any]:
    """The ECS event the connect hook reports for such a call, as the evaluator reads it."""
    shape = Hook.SOCKET_CONNECT.events[0]
    return {
        "event": {"category": ["network"], "type": [shape.type], "action": shape.action, "kind": "event"},
        "process": {"name": name, "parent": {"name": parent}},
        "user": {"id": str(uid)},
        "destination": {"ip": ip, "port": port},
    }
