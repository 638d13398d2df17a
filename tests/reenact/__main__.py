"""``python -m tests.reenact [--events] [technique-id ...]``: run the re-enactments as root, print the table.

For the vm-tests guests and manual runs: no pytest, no guardctl. It makes its own cgroup scope and
runs every technique (or the ones named) under a detect-mode agent on this kernel's plane. Exit
status 0 when the goal is met, 1 when it is not, 2 when it cannot run (not root, no data plane, an
unknown technique). ``--events`` adds, under each technique, the ECS documents the agent's engine saw
while it ran.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from guard.lsm.probe import probe_kernel
from tests.privileged.scoping import scoped_cgroup
from tests.reenact.harness import GOAL, reenact
from tests.reenact.techniques import TECHNIQUES, technique


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("python -m tests.reenact: run as root (it loads BPF programs)", file=sys.stderr)
        return 2
    events = "--events" in argv
    names = [a for a in argv if a != "--events"]
    try:
        chosen = tuple(technique(name) for name in names) if names else TECHNIQUES
    except KeyError as exc:
        print(f"python -m tests.reenact: no technique {exc}", file=sys.stderr)
        return 2
    backend = probe_kernel().backend.value
    if backend == "fake":
        print("python -m tests.reenact: no BPF data plane on this kernel", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kestrel-reenact-cache-") as cache, scoped_cgroup() as cgroup:
        report = reenact(chosen, cgroup, Path(cache), backend, record_events=events)
    print(report.render(events=events))
    return 0 if report.ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
